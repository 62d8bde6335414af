"""Guard rails checked before an action executes: recipients, rate limits.

The analysis is untrusted input, so these hold whatever an email asks for.
A refusal is returned, never raised, and the executor records it on the
action and in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Min
from django.utils import timezone

from actions.handlers import Handler, Params
from actions.models import Action, DomainSend

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Refusal:
    """Why an action may not run. With `retry_at` it may later (a rate limit); without, never."""

    reason: str
    retry_at: datetime | None = None


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(">")


def in_domains(address: str, domains: list[str]) -> bool:
    """Whether the address is at one of the domains or a subdomain of one; "*" matches every domain."""
    domain = domain_of(address)
    return "*" in domains or any(domain == d or domain.endswith(f".{d}") for d in domains)


def outside_recipients(action: Action, recipients: list[str]) -> list[str]:
    """The recipients mail may not go to: not at an internal or allowed domain, and not the email's own sender."""
    sender = action.email.from_address.lower() if action.email_id else ""
    allowed = settings.INTERNAL_DOMAINS + settings.ALLOWED_RECIPIENT_DOMAINS
    return sorted({address for address in recipients if address.lower() != sender and not in_domains(address, allowed)})


def check_recipients(action: Action, recipients: list[str]) -> Refusal | None:
    """Outgoing mail goes only to internal and allowed domains, and to the email's own sender."""
    refused = outside_recipients(action, recipients)
    if refused:
        return Refusal(f"recipients outside the allowed domains: {', '.join(refused)}")
    return None


def check_type_rate(action: Action, now: datetime) -> Refusal | None:
    limit = settings.RATE_LIMITS_PER_HOUR.get(action.type)
    if not limit:
        return None
    recent = Action.objects.filter(type=action.type, started_at__gte=now - HOUR).exclude(pk=action.pk)
    if recent.count() < limit:
        return None
    oldest = recent.aggregate(oldest=Min("started_at"))["oldest"]
    return Refusal(f"rate limit of {limit} {action.type} per hour reached", retry_at=oldest + HOUR)


def check_domain_rates(action: Action, recipients: list[str], now: datetime) -> Refusal | None:
    limit = settings.DOMAIN_RATE_LIMIT_PER_HOUR
    for domain in sorted({domain_of(address) for address in recipients}):
        recent = DomainSend.objects.filter(domain=domain, at__gte=now - HOUR).exclude(action=action)
        if recent.count() >= limit:
            oldest = recent.aggregate(oldest=Min("at"))["oldest"]
            return Refusal(f"rate limit of {limit} sends per hour to {domain} reached", retry_at=oldest + HOUR)
    return None


def check(action: Action, handler: Handler, params: Params) -> Refusal | None:
    """Every guard rail for one action about to run; the first refusal, or None to go ahead."""
    now = timezone.now()
    recipients = handler.recipients(action, params) if handler.sends_mail else []
    refusal = (
        check_recipients(action, recipients)
        or check_type_rate(action, now)
        or check_domain_rates(action, recipients, now)
    )
    if refusal is None:
        for domain in {domain_of(address) for address in recipients}:
            DomainSend.objects.get_or_create(domain=domain, action=action, defaults={"at": now})
    return refusal
