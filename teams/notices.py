"""The team's notification emails: delegation and escalation notices, built but not sent.

The builders return an EmailMultiAlternatives (text body plus an HTML
alternative, both from templates/email/); sending is the outbox's job.
Every value that reaches the subject or an address header is made single-line
first, because email subjects, names and bodies are written by strangers.
"""

from __future__ import annotations

import re
from email.utils import formataddr
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.text import Truncator

from actions.models import Priority

if TYPE_CHECKING:
    from actions.models import Action, Email
    from teams.models import TeamMember

AUTOMATIC_ACTOR = "Mailroom"
EXCERPT_CHARS = 500
SUBJECT_CHARS = 120

# Headers every notice carries. Auto-Submitted (RFC 3834) tells vacation
# responders and other robots not to answer; X-Auto-Response-Suppress is
# the same request in the dialect Exchange and Outlook understand.
AUTOMATIC_HEADERS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"}

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def one_line(value: object) -> str:
    """Return the value as a single line of text: line breaks and control characters become spaces."""
    # splitlines() also breaks on \v, \f, \x1c-\x1e, \x85, \u2028 and \u2029, not only CR and LF.
    text = " ".join(str(value).splitlines())
    return " ".join(_CONTROL_CHARS.sub(" ", text).split())


def quoted(text: str) -> str:
    """Return text with every line marked "> ", as mail quotes what someone else wrote."""
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def build_delegation_notice(
    action: Action,
    assignee: TeamMember,
    *,
    delegated_by: str = "",
    note: str = "",
    previous: TeamMember | None = None,
    undo: bool = False,
) -> EmailMultiAlternatives:
    """Build the email telling `assignee` that the action's email or task was delegated to them, or taken back.

    With undo=True the delegation to `assignee` was reversed and the work went
    back to `previous` (or to nobody in particular when `previous` is None).
    An empty `delegated_by` means Mailroom delegated it on its own; an empty
    `note` falls back to the action's rationale.
    """
    heading = "Delegation taken back" if undo else "Delegated to you"
    context = {
        **action_facts(action),
        "assignee": str(assignee),
        "delegated_by": one_line(delegated_by) or AUTOMATIC_ACTOR,
        "note": note.strip() or action.rationale.strip(),
        "previous": str(previous) if previous is not None else "",
        "undo": undo,
        "heading": heading,
    }
    return _build_message(
        "delegation_notice",
        context,
        subject=_subject(action, heading),
        recipients=[assignee],
    )


def build_escalation_notice(
    action: Action,
    recipients: list[TeamMember],
    *,
    level: int,
    reason: str,
    escalated_from: TeamMember | str | None = None,
    undo: bool = False,
) -> EmailMultiAlternatives:
    """Build the email telling the escalation chain that the action's issue reached `level`, or was taken back.

    The first recipient is the one the issue is escalated to and goes in To;
    the rest of the chain is kept informed in Cc. With undo=True the
    escalation to `level` was reversed and `reason` says why.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level < 1:
        raise ValueError(f"level must be a whole number from 1 up, not {level!r}.")
    recipients = _distinct(recipients)
    if not recipients:
        raise ValueError("An escalation notice needs at least one recipient.")
    heading = f"De-escalated from level {level}" if undo else f"Escalated to level {level}"
    context = {
        **action_facts(action),
        "level": level,
        "reason": reason.strip(),
        "escalated_from": str(escalated_from) if escalated_from else "",
        "escalated_to": str(recipients[0]),
        "copied": [str(member) for member in recipients[1:]],
        "undo": undo,
        "heading": heading,
    }
    return _build_message(
        "escalation_notice",
        context,
        subject=_subject(action, heading),
        recipients=recipients,
    )


def action_facts(action: Action) -> dict[str, Any]:
    """Return what both notices say about the action and the email it came from."""
    email = action.email
    facts: dict[str, Any] = {
        "action_label": str(action),
        "action_url": settings.SITE_URL + reverse("admin:actions_action_change", args=[action.pk]),
        "priority": action.get_priority_display(),
        "urgent": action.priority == Priority.URGENT,
        "email_subject": "",
        "email_sender": "",
        "email_received_at": None,
        "excerpt": "",
        "excerpt_quoted": "",
    }
    if email is not None:
        excerpt = _excerpt(email.plain_text)
        facts.update(
            email_subject=email.subject.strip() or "(no subject)",
            email_sender=email.sender,
            email_received_at=email.received_at,
            excerpt=excerpt,
            # Quoted in the text body, so the sender's words cannot pass for the notice's own.
            excerpt_quoted=quoted(excerpt),
        )
    return facts


def _excerpt(body: str) -> str:
    """Return the start of a message body as plain text, at most EXCERPT_CHARS long."""
    lines = [line.rstrip() for line in body.strip().splitlines()]
    # Quoted replies and signatures pile up blank lines; one is enough in a notice.
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return Truncator(text).chars(EXCERPT_CHARS)


def _subject(action: Action, heading: str) -> str:
    """Return the notice's subject: the heading and the email's subject, on one line."""
    topic = one_line(action.email.subject) if action.email is not None else ""
    topic = Truncator(topic or str(action)).chars(SUBJECT_CHARS)
    prefix = "[Urgent] " if action.priority == Priority.URGENT else ""
    return f"{prefix}{heading}: {topic}"


def _distinct(members: list[TeamMember]) -> list[TeamMember]:
    """Return the members in their order, each address once, even when a chain names someone twice."""
    by_address: dict[str, TeamMember] = {}
    for member in members:
        by_address.setdefault(member.email.lower(), member)
    return list(by_address.values())


def _address(member: TeamMember) -> str:
    """Return the member's address for a To or Cc header; refuse one that is not a single valid address."""
    address = member.email
    try:
        validate_email(address)
    except ValidationError:
        raise ValueError(f"Team member {one_line(member)} has no usable email address ({address!r}).") from None
    return formataddr((one_line(member), address))


def _build_message(
    template: str, context: dict[str, Any], *, subject: str, recipients: list[TeamMember]
) -> EmailMultiAlternatives:
    """Render the notice's text and HTML templates into one message to the given members."""
    addresses = [_address(member) for member in recipients]
    return render_message(template, context, subject=subject, to=addresses[:1], cc=addresses[1:])


def render_message(
    template: str, context: dict[str, Any], *, subject: str, to: list[str], cc: list[str] | None = None
) -> EmailMultiAlternatives:
    """Render templates/email/<template>.txt and .html into one automatic message from Mailroom."""
    context = {**context, "subject": subject}
    message = EmailMultiAlternatives(
        subject=subject,
        # Template tags leave blank lines at the ends; the body ends in exactly one newline.
        body=render_to_string(f"email/{template}.txt", context).strip() + "\n",
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        cc=cc or [],
        headers=dict(AUTOMATIC_HEADERS),
    )
    message.attach_alternative(render_to_string(f"email/{template}.html", context), "text/html")
    return message


def build_urgent_notice(email: Email, recipients: list[TeamMember], *, actions: list[Action]) -> EmailMultiAlternatives:
    """Build the email telling the members on duty that an urgent message arrived, and what is under way."""
    recipients = _distinct(recipients)
    if not recipients:
        raise ValueError("An urgent notice needs at least one recipient.")
    excerpt = _excerpt(email.plain_text)
    context = {
        "heading": "Urgent message",
        "urgent": True,
        "email_subject": email.subject.strip() or "(no subject)",
        "email_sender": email.sender,
        "email_received_at": email.received_at,
        "summary": email.summary,
        "excerpt": excerpt,
        "excerpt_quoted": quoted(excerpt),
        "email_url": settings.SITE_URL + reverse("admin:actions_email_change", args=[email.pk]),
        "actions": [f"{action} ({action.get_status_display().lower()})" for action in actions],
    }
    subject = "[Urgent] " + Truncator(one_line(email.subject) or "(no subject)").chars(SUBJECT_CHARS)
    return _build_message("urgent_notice", context, subject=subject, recipients=recipients)
