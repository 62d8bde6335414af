"""Handlers that send mail about an email: reply, forward, answer an approval request, follow up.

Every message goes through the outbox under a Message-ID derived from the
action, so a redelivered task finds the message it already stored and never
sends it twice. Strangers write the subjects, names and headers these
messages quote: anything that reaches a header is made single-line first.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any, Literal

from django.db.models import Q
from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from actions.handlers import ActionFailed, Handler, Outcome, Params, register
from actions.handlers.base import email_of
from actions.handlers.outgoing import (
    DEFAULT_FOLLOW_UP_HOURS,
    SUBJECT_CHARS,
    Addresses,
    Hours,
    RequiredText,
    mailbox_address,
    prefixed_subject,
    reply,
    reply_addresses,
    send,
    sent_result,
)
from actions.models import Action, Email
from integrations import outbox
from integrations.models import OutboxMessage
from teams.notices import one_line, quoted


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
        email = email_of(action, "forward")
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
    parts = [note.strip(), "\n".join(block), email.plain_text.strip()]
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
        email = email_of(action, "follow up on")
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
    excerpt = quoted(email.plain_text[:1000])
    return "\n".join(lines) + ("\n\n" + excerpt if excerpt else "") + "\n"
