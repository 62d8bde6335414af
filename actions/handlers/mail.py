"""Handlers that send mail about an email: reply, forward, answer an approval request, follow up.

Every message goes through the outbox under a Message-ID derived from the
action, so a redelivered task finds the message it already stored and never
sends it twice. Strangers write the subjects, names and headers these
messages quote: anything that reaches a header is made single-line first.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Q
from django.utils.html import strip_tags
from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from actions.handlers import ActionFailed, Handler, Outcome, Params, register
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


def _valid_address(value: str) -> str:
    if not _is_address(value):
        raise ValueError(f"{value!r} is not a valid email address")
    return value


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


Address = Annotated[str, AfterValidator(_valid_address)]
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
            addresses = [a.addr_spec for a in header.addresses if _is_address(a.addr_spec)]
            if addresses:
                return _distinct(addresses)
    return [email.from_address] if _is_address(email.from_address) else []


def mailbox_address(email: Email) -> str | None:
    """The mailbox the email arrived in, when it is named by an address."""
    return email.mailbox if _is_address(email.mailbox) else None


def _is_address(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _email_of(action: Action, doing: str) -> Email:
    if action.email is None:
        raise ActionFailed(f"{action.get_type_display()} needs an email to {doing}.")
    return action.email


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.strip().splitlines())


def _text_of(email: Email) -> str:
    return email.text_body or strip_tags(email.html_body)


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
    email = _email_of(action, "reply to")
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


class ReplyParams(Params):
    body: RequiredText
    html_body: str = ""
    cc: Addresses = []


@register
class SendReply(Handler):
    """Reply in the thread of the action's email."""

    type = "send_reply"
    params = ReplyParams
    capability = "mail"
    sends_mail = True

    def recipients(self, action: Action, params: ReplyParams) -> list[str]:
        return [*reply_addresses(action.email), *params.cc] if action.email else []

    def execute(self, action: Action, params: ReplyParams) -> Outcome:
        return Outcome(result=reply(action, "reply", body=params.body, html_body=params.html_body, cc=params.cc))


class ForwardParams(Params):
    to: Annotated[Addresses, Field(min_length=1)]
    note: str = ""
    include_attachments: bool = True


@register
class ForwardEmail(Handler):
    """Forward the action's email, with a note on top and its stored attachments."""

    type = "forward_email"
    params = ForwardParams
    capability = "mail"
    sends_mail = True

    def recipients(self, action: Action, params: ForwardParams) -> list[str]:
        return list(params.to)

    def execute(self, action: Action, params: ForwardParams) -> Outcome:
        email = _email_of(action, "forward")
        attached, missing = _attachments(email) if params.include_attachments else ([], [])
        message = send(
            action,
            "forward",
            to=params.to,
            subject=prefixed_subject("Fwd", email.subject),
            text_body=_forwarded_body(email, params.note),
            attachments=attached,
        )
        result = {**sent_result(message), "attachments": [part["filename"] for part in message.attachments]}
        if missing:
            result["missing_attachments"] = missing
        return Outcome(result=result)


def _forwarded_body(email: Email, note: str) -> str:
    block = [
        "---------- Forwarded message ---------",
        f"From: {one_line(email.sender)}",
        f"Date: {format_datetime(email.received_at)}",
        f"Subject: {one_line(email.subject)}",
        f"To: {one_line(', '.join(map(str, email.to)))}",
    ]
    if email.cc:
        block.append(f"Cc: {one_line(', '.join(map(str, email.cc)))}")
    parts = [note.strip(), "\n".join(block), _text_of(email).strip()]
    return "\n\n".join(part for part in parts if part) + "\n"


_MIME_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")


def _attachments(email: Email) -> tuple[list[dict[str, Any]], list[str]]:
    """The email's attachments whose files are stored, as outbox parts; and the names of those that are not."""
    parts, missing = [], []
    for item in email.attachments.all():
        name = one_line(item.filename) or "attachment"
        if not item.file or not item.file.storage.exists(item.file.name):
            missing.append(name)
            continue
        with item.file.open("rb") as handle:
            content = handle.read()
        content_type = item.content_type.split(";")[0].strip().lower()
        if not _MIME_TYPE.match(content_type):
            content_type = "application/octet-stream"
        parts.append(outbox.attachment(name, content_type, content))
    return parts, missing


def _currency_code(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ValueError(f"{value!r} is not a three-letter currency code such as EUR")
    return value.upper()


class ApprovalParams(Params):
    decision: Literal["approve", "reject"]
    comment: str = ""
    reference: str = ""
    amount: float | None = Field(default=None, ge=0, strict=True, allow_inf_nan=False)
    currency: Annotated[str, AfterValidator(_currency_code)] | None = None

    @model_validator(mode="after")
    def _currency_with_amount(self) -> ApprovalParams:
        if self.currency is not None and self.amount is None:
            raise ValueError("currency is given without an amount")
        return self


@register
class ApproveRequest(Handler):
    """Answer an approval request in its thread: approved or rejected, with a comment."""

    type = "approve_request"
    params = ApprovalParams
    capability = "mail"
    sends_mail = True

    def recipients(self, action: Action, params: ApprovalParams) -> list[str]:
        return reply_addresses(action.email) if action.email else []

    def execute(self, action: Action, params: ApprovalParams) -> Outcome:
        result = reply(action, "approval", body=_decision_text(params))
        return Outcome(result={**result, "decision": params.decision})


def _decision_text(params: ApprovalParams) -> str:
    request = "Your request"
    if params.reference:
        request += f" {one_line(params.reference)}"
    if params.amount is not None:
        request += f" for {params.amount:,.2f}" + (f" {params.currency}" if params.currency else "")
    decided = "approved" if params.decision == "approve" else "rejected"
    parts = [f"{request} has been {decided}.", params.comment.strip()]
    return "\n\n".join(part for part in parts if part) + "\n"


class FollowUpParams(Params):
    due_in_hours: Hours | None = None
    due_at: AwareDatetime | None = None
    draft: str = ""

    @model_validator(mode="after")
    def _one_due_time(self) -> FollowUpParams:
        if self.due_in_hours is not None and self.due_at is not None:
            raise ValueError("give due_in_hours or due_at, not both")
        return self

    def due(self, received_at: datetime) -> datetime:
        """When the follow-up is due for an email received at `received_at`."""
        if self.due_at is not None:
            return self.due_at
        return received_at + timedelta(hours=self.due_in_hours or DEFAULT_FOLLOW_UP_HOURS)


@register
class FollowUp(Handler):
    """When due: if nobody has replied in the thread, send the follow-up draft, or remind the mailbox."""

    type = "follow_up"
    params = FollowUpParams
    capability = "mail"
    sends_mail = True

    def due_at(self, action, params: FollowUpParams):
        received = action.email.received_at if action.email_id else action.created_at
        return params.due(received)

    def recipients(self, action: Action, params: FollowUpParams) -> list[str]:
        if action.email is None:
            return []
        if params.draft:
            return reply_addresses(action.email)
        return [address] if (address := mailbox_address(action.email)) else []

    def execute(self, action: Action, params: FollowUpParams) -> Outcome:
        email = _email_of(action, "follow up on")
        purpose = "follow_up" if params.draft else "follow_up_reminder"
        # A redelivery after the send must finish it, not skip because the answer came since.
        stored = OutboxMessage.objects.filter(message_id=outbox.message_id_for(action.pk, purpose)).exists()
        if not stored and (answer := first_reply(email)) is not None:
            return Outcome(result={"skipped": "a reply arrived", "reply_id": answer.pk})
        if params.draft:
            return Outcome(result=reply(action, purpose, body=params.draft))
        address = mailbox_address(email)
        if address is None:
            raise ActionFailed(f"The mailbox {one_line(email.mailbox)!r} has no address to send a reminder to.")
        message = send(
            action,
            purpose,
            to=[address],
            subject=f"No reply yet: {one_line(email.subject) or '(no subject)'}"[:SUBJECT_CHARS],
            text_body=_unanswered_text(email),
        )
        return Outcome(result=sent_result(message))


def first_reply(email: Email) -> Email | None:
    """The first message in the email's mailbox that answers it and arrived after it, if any."""
    later = Email.objects.filter(mailbox=email.mailbox, received_at__gt=email.received_at).exclude(pk=email.pk)
    own_id = email.message_id
    if own_id:
        # icontains works on SQLite too (JSON `contains` does not); the exact test is below.
        later = later.filter(Q(parent=email) | Q(in_reply_to__contains=own_id) | Q(references__icontains=own_id))
    else:
        later = later.filter(parent=email)
    for candidate in later.order_by("received_at", "pk").only("pk", "parent", "in_reply_to", "references"):
        answers = bool(own_id) and (own_id in candidate.in_reply_to or own_id in candidate.references)
        if answers or candidate.parent_id == email.pk:
            return candidate
    return None


def _unanswered_text(email: Email) -> str:
    lines = [
        "Nobody has answered this email yet.",
        "",
        f"From: {one_line(email.sender)}",
        f"Received: {format_datetime(email.received_at)}",
        f"Subject: {one_line(email.subject) or '(no subject)'}",
    ]
    excerpt = _quoted(_text_of(email)[:1000])
    return "\n".join(lines) + ("\n\n" + excerpt if excerpt else "") + "\n"
