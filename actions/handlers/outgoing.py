"""Composing and sending mail for handlers: addresses, thread headers, subjects, the outbox round trip.

Shared by the mail and calendar handlers. Strangers write the subjects,
names and headers these messages quote: anything that reaches a header is
made single-line first.
"""

from __future__ import annotations

import re
from email.policy import default as default_policy
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from actions.handlers.base import ActionFailed, Address, email_of, is_address
from actions.models import Action, Email
from integrations import outbox
from integrations.errors import IntegrationError
from integrations.models import OutboxMessage, OutboxStatus
from teams.notices import one_line

MAX_RECIPIENTS = 50
# The outbox's subject column holds 998 characters; a reply's prefix must still fit.
SUBJECT_CHARS = 900
# RFC 5322 lets References be trimmed; keep the first id (the thread's root) and the latest ones.
REFERENCES_KEPT = 20
DEFAULT_FOLLOW_UP_HOURS = 48
MAX_HOURS = 24 * 366
REPLIED = {"Auto-Submitted": "auto-replied"}

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_REPLY_PREFIX = re.compile(r"^\s*re\s*:", re.IGNORECASE)
_FORWARD_PREFIX = re.compile(r"^\s*fwd?\s*:", re.IGNORECASE)


# --- Parameter types (calendar.py uses them too) --------------------------------------


def _distinct(addresses: list[str]) -> list[str]:
    """Each address once, compared without case, in the order given."""
    first: dict[str, str] = {}
    for address in addresses:
        first.setdefault(address.lower(), address)
    return list(first.values())


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


Addresses = Annotated[list[Address], Field(max_length=MAX_RECIPIENTS), AfterValidator(_distinct)]
RequiredText = Annotated[str, AfterValidator(_not_blank)]
Hours = Annotated[float, Field(gt=0, le=MAX_HOURS, strict=True, allow_inf_nan=False)]


# --- Composing ---------------------------------------------------------------------------


def prefixed_subject(prefix: str, subject: str) -> str:
    """The subject on one line, with "Re:" or "Fwd:" in front unless it already has one."""
    topic = one_line(subject) or "(no subject)"
    already = _REPLY_PREFIX if prefix == "Re" else _FORWARD_PREFIX
    if not already.match(topic):
        topic = f"{prefix}: {topic}"
    return topic[:SUBJECT_CHARS]


def _message_ids(value: str) -> list[str]:
    text = one_line(value)
    ids = _MESSAGE_ID.findall(text)
    if not ids and text and not re.search(r"[\s<>]", text):
        ids = [f"<{text}>"]  # stored without its angle brackets
    return ids


def thread_headers(email: Email) -> dict[str, str]:
    """In-Reply-To and References that put a reply in the email's thread."""
    own = _message_ids(email.message_id)[:1]
    if not own:
        return {}
    references = [mid for value in email.references if isinstance(value, str) for mid in _message_ids(value)]
    references = list(dict.fromkeys([*references, *own]))
    if len(references) > REFERENCES_KEPT:
        references = references[:1] + references[-(REFERENCES_KEPT - 1) :]
    return {"In-Reply-To": own[0], "References": " ".join(references)}


def reply_addresses(email: Email) -> list[str]:
    """Where a reply goes: the Reply-To addresses when the email has usable ones, else its sender (if usable)."""
    for pair in email.headers:
        if isinstance(pair, list | tuple) and len(pair) == 2 and str(pair[0]).lower() == "reply-to":
            header = default_policy.header_factory("Reply-To", one_line(pair[1]))
            addresses = [a.addr_spec for a in header.addresses if is_address(a.addr_spec)]
            if addresses:
                return _distinct(addresses)
    return [email.from_address] if is_address(email.from_address) else []


def mailbox_address(email: Email) -> str | None:
    """The mailbox the email arrived in, when it is named by an address."""
    return email.mailbox if is_address(email.mailbox) else None


# --- Sending -------------------------------------------------------------------------------


def send(
    action: Action,
    purpose: str,
    *,
    to: list[str],
    subject: str,
    text_body: str,
    cc: list[str] | None = None,
    html_body: str = "",
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> OutboxMessage:
    """Store the action's message for `purpose` in the outbox and deliver it, unless it has left already."""
    message = outbox.store_message(
        message_id=outbox.message_id_for(action.pk, purpose),
        action=action,
        to=to,
        cc=cc,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        headers=headers,
        attachments=attachments,
    )
    deliver_once(message)
    return message


def deliver_once(message: OutboxMessage) -> None:
    """Deliver a stored message, or make sure it already was; raise when that cannot be known yet."""
    if message.status == OutboxStatus.FAILED:
        # Only a person's retry runs an action again after the server refused its message: try once more.
        OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.FAILED).update(status=OutboxStatus.PENDING)
    if outbox.deliver(message):
        return
    status = OutboxMessage.objects.filter(pk=message.pk).values_list("status", flat=True).first()
    if status == OutboxStatus.SENT:
        return
    if status == OutboxStatus.HELD:
        raise ActionFailed(
            f"Message {message.message_id} is held for a person: a worker died while sending it, "
            "so it may have left already."
        )
    if status == OutboxStatus.CANCELLED:
        raise ActionFailed(f"Message {message.message_id} was cancelled in the outbox.")
    # `sending`: another worker is sending it right now, or died doing so and recovery will decide.
    raise IntegrationError(f"Message {message.message_id} is {status}; trying again later.")


def sent_result(message: OutboxMessage) -> dict[str, Any]:
    """What an action that sent `message` records as its result."""
    return {"message_id": message.message_id, "to": message.to, "cc": message.cc, "subject": message.subject}


def reply(
    action: Action, purpose: str, *, body: str, html_body: str = "", cc: list[str] | None = None
) -> dict[str, Any]:
    """Send `body` as a reply in the thread of the action's email; return the result to record."""
    email = email_of(action, "reply to")
    to = reply_addresses(email)
    if not to:
        raise ActionFailed(f"The email from {one_line(email.sender)!r} has no address to reply to.")
    headers = {**thread_headers(email), **REPLIED}
    if mailbox := mailbox_address(email):
        # Mail leaves from DEFAULT_FROM_EMAIL; the answer should still land in the mailbox we read.
        headers["Reply-To"] = mailbox
    message = send(
        action,
        purpose,
        to=to,
        cc=cc,
        subject=prefixed_subject("Re", email.subject),
        text_body=body,
        html_body=html_body,
        headers=headers,
    )
    return sent_result(message)


# --- Handlers ------------------------------------------------------------------------------
