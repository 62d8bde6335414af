"""The outbox: every message Mailroom sends is stored here first, then delivered through the mail backend.

A message's Message-ID is derived from the action and purpose that send it,
and is unique in the table, so storing the same message twice (a redelivered
task) returns the stored row, and a message already sent is never delivered
again. Delivery marks the row `sending` just before the send call and `sent`
just after: a crash can leave a message ambiguous only for that call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import time
from email import encoders
from email.errors import MessageError
from email.message import Message
from email.mime.base import MIMEBase
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import SafeMIMEText
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from integrations.calls import calling
from integrations.errors import IntegrationError
from integrations.mail import mail_backend
from integrations.models import OutboxMessage, OutboxStatus

logger = logging.getLogger(__name__)

AUTOMATIC_HEADERS = {"Auto-Submitted": "auto-generated"}


def message_id_for(action_id: int, purpose: str = "send") -> str:
    """The Message-ID an action's message carries: the same for every delivery attempt of it."""
    digest = hashlib.sha256(f"{settings.SECRET_KEY}:{action_id}:{purpose}".encode()).hexdigest()[:16]
    return f"<mailroom.{action_id}.{purpose}.{digest}@{settings.MESSAGE_ID_DOMAIN}>"


def store_message(
    *,
    message_id: str,
    to: list[str],
    subject: str,
    text_body: str,
    action=None,
    cc: list[str] | None = None,
    html_body: str = "",
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    from_email: str = "",
) -> OutboxMessage:
    """Store a message to send, or return the one already stored under that Message-ID.

    Header values are checked when the message is delivered (see `_refuse_injection`):
    a refused message stays in the outbox, failed, with the reason.
    """
    if not to and not cc:
        # Django's backend "sends" a message without recipients by doing nothing.
        raise ValueError("A message needs at least one recipient.")
    message, _ = OutboxMessage.objects.get_or_create(
        message_id=message_id,
        defaults={
            "action": action,
            "from_email": from_email or settings.DEFAULT_FROM_EMAIL,
            "to": list(to),
            "cc": list(cc or []),
            "subject": subject,
            "text_body": text_body,
            "html_body": html_body,
            "headers": {**AUTOMATIC_HEADERS, **(headers or {})},
            "attachments": attachments or [],
        },
    )
    return message


def store_email(email: EmailMultiAlternatives, *, message_id: str, action=None) -> OutboxMessage:
    """Store a message built elsewhere (e.g. a notice from templates) in the outbox."""
    html = next((content for content, mimetype in email.alternatives if mimetype == "text/html"), "")
    return store_message(
        message_id=message_id,
        action=action,
        to=email.to,
        cc=email.cc,
        subject=email.subject,
        text_body=email.body,
        html_body=html,
        headers=dict(email.extra_headers),
        from_email=email.from_email,
    )


def attachment(filename: str, content_type: str, content: bytes) -> dict[str, Any]:
    """An attachment as the outbox stores it."""
    return {"filename": filename, "content_type": content_type, "content": base64.b64encode(content).decode()}


# str.splitlines() breaks at each of these, and so does some mail software.
_LINE_BREAK = re.compile("[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# RFC 5322: a header name is printable ASCII without the colon.
_HEADER_NAME = re.compile(r"[!-9;-~]+")
# Written from the row's own fields: a stored header of these names could only contradict them.
_FIELD_HEADERS = {
    "bcc", "cc", "content-disposition", "content-transfer-encoding", "content-type", "date", "from",
    "message-id", "mime-version", "sender", "subject", "to",
}  # fmt: skip


def _refuse_injection(message: OutboxMessage) -> None:
    """Raise ValueError, naming the field, when a value would end its header line and start another.

    Subjects, display names and attachment names often come from strangers'
    mail; one line break would let them add a Bcc or any header they like.
    """
    for name in message.headers:
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"Not a header name: {name!r}")
        if name.lower() in _FIELD_HEADERS:
            raise ValueError(f"The {name} header comes from the message's own fields, not its extra headers.")
    fields = [
        ("Message-ID", message.message_id),
        ("subject", message.subject),
        ("sender", message.from_email),
        *(("recipient", address) for address in [*message.to, *message.cc]),
        *message.headers.items(),
        *(("attachment name", part["filename"]) for part in message.attachments),
        *(("attachment type", part["content_type"]) for part in message.attachments),
    ]
    for field, value in fields:
        if not isinstance(value, str):
            raise ValueError(f"The {field} is not text: {value!r}")
        if _LINE_BREAK.search(value):
            raise ValueError(f"Line break in the {field}: {value!r}")


class _OutgoingEmail(EmailMultiAlternatives):
    """Django's message, except that a content type with parameters (text/calendar; method=REQUEST) stays whole.

    Django takes the parameters for part of the subtype and then adds a
    charset of its own, so "charset" came out twice.
    """

    def _create_mime_attachment(self, content, mimetype):
        if ";" not in mimetype:
            return super()._create_mime_attachment(content, mimetype)
        header = Message()
        header["Content-Type"] = mimetype
        maintype, subtype = header.get_content_maintype(), header.get_content_subtype()
        parameters = [(name, value) for name, value in header.get_params()[1:] if name.lower() != "charset"]
        if maintype == "text":
            if isinstance(content, bytes):
                content = content.decode(header.get_content_charset() or "utf-8")
            part = SafeMIMEText(content, subtype, "utf-8")
            for name, value in parameters:
                part.set_param(name, value)
            return part
        part = MIMEBase(maintype, subtype, **dict(parameters))
        part.set_payload(content)
        encoders.encode_base64(part)
        return part


def _as_email(message: OutboxMessage, *, calendar_inline: bool) -> EmailMultiAlternatives:
    email = _OutgoingEmail(
        subject=message.subject,
        body=message.text_body,
        from_email=message.from_email,
        to=message.to,
        cc=message.cc,
        headers={**message.headers, "Message-ID": message.message_id},
    )
    if message.html_body:
        email.attach_alternative(message.html_body, "text/html")
    for part in message.attachments:
        content = base64.b64decode(part["content"], validate=True)
        if calendar_inline and _is_itip(part["content_type"]):
            _attach_invitation(email, part["filename"], part["content_type"], content)
        else:
            email.attach(part["filename"], content, part["content_type"])
    return email


def _is_itip(content_type: str) -> bool:
    """Whether the content type is an iCalendar invitation, reply or cancellation (it names its method)."""
    header = Message()
    header["Content-Type"] = content_type
    return header.get_content_type() == "text/calendar" and header.get_param("method") is not None


def _attach_invitation(email: EmailMultiAlternatives, filename: str, content_type: str, content: bytes) -> None:
    """The calendar as the mail clients' invitation part, and again as a file to open.

    Outlook shows Accept and Decline only for a text/calendar part with its
    method inside multipart/alternative; others look at attachments. Google
    Calendar sends both, the file as application/ics so that no client
    takes it for a second invitation.
    """
    header = Message()
    header["Content-Type"] = content_type
    if filename.isascii():
        header.set_param("name", filename)
    email.attach_alternative(content, str(header["Content-Type"]))
    email.attach(filename, content, "application/ics")


def _build(message: OutboxMessage, *, calendar_inline: bool = True) -> EmailMultiAlternatives:
    """The message as Django sends it; raises ValueError when it cannot be written as MIME, or safely."""
    try:
        _refuse_injection(message)
        email = _as_email(message, calendar_inline=calendar_inline)
        # Rendering is where bad headers and encodings surface (some only when folded).
        email.message().as_bytes()
    except (ValueError, TypeError, KeyError, LookupError, binascii.Error, MessageError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    return email


def deliver(message: OutboxMessage) -> bool:
    """Send one stored message once; return False when it was already sent or is not ours to send.

    Raises IntegrationError when the message cannot be sent: permanent when
    it cannot be written safely or the provider refuses it for good (a 5xx
    SMTP reply, a 4xx API answer), transient for 4xx SMTP replies, 429, 5xx
    API answers and connection trouble. The row is then back in `pending`
    (transient) or `failed` (permanent), with the reason.
    """
    now = timezone.now()
    claimed = OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.SENDING, sending_started_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return False
    message.refresh_from_db()
    try:
        # A failure here is mail's, whichever action sends: an invitation that fails is not the calendar's.
        with calling("mail"):
            backend = mail_backend()
            try:
                email = _build(message, calendar_inline=backend.writes_mime)
            except ValueError as exc:
                # Left `sending`, it would wait for recovery and then fail the same way, forever.
                raise IntegrationError(f"Cannot build the message: {exc}", permanent=True) from exc
            backend.send(email)
    except IntegrationError as exc:
        _record_failure(message, str(exc), exc.permanent)
        raise
    except Exception as exc:
        # Not the provider's answer (a bug, or an encoding the build check missed): back to
        # pending for the next attempt, not left looking like a worker that died mid-send.
        _record_failure(message, f"{type(exc).__name__}: {exc}", permanent=False)
        raise
    _record_sent(message)
    return True


# Attempts at recording a send whose database connection was lost meanwhile (a
# failover, a restart), a little longer apart each time.
RECORD_SENT_ATTEMPTS = 5


def _record_sent(message: OutboxMessage) -> None:
    """Mark the message sent; if the connection was lost since the claim, on a new connection.

    The message has left and only this worker knows it: left `sending`, the
    row would be recovered to `pending` and the message sent a second time.
    """
    for attempt in range(1, RECORD_SENT_ATTEMPTS + 1):
        try:
            OutboxMessage.objects.filter(pk=message.pk).update(
                status=OutboxStatus.SENT, sent_at=timezone.now(), last_error=""
            )
            return
        except (OperationalError, InterfaceError):
            # Inside a transaction a new connection would lose the work before it: let it fail.
            if attempt == RECORD_SENT_ATTEMPTS or connection.in_atomic_block:
                raise
            logger.warning("Outbox message %s sent, but not recorded yet (attempt %d)", message.pk, attempt)
            connection.close()
            time.sleep(0.5 * attempt)


def _record_failure(message: OutboxMessage, error: str, permanent: bool) -> None:
    OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.SENDING).update(
        status=OutboxStatus.FAILED if permanent else OutboxStatus.PENDING, last_error=error[:2000]
    )


def cancel(message: OutboxMessage) -> bool:
    """Stop a message that has not left yet; False if it already has (or is leaving)."""
    return (
        OutboxMessage.objects.filter(pk=message.pk, status__in=[OutboxStatus.PENDING, OutboxStatus.HELD]).update(
            status=OutboxStatus.CANCELLED
        )
        == 1
    )


@transaction.atomic
def recover_stuck_sends(older_than_seconds: int) -> dict[str, int]:
    """Deal with messages left `sending` by a worker that died mid-send.

    The send may or may not have reached the server. With OUTBOX_STUCK_SENDS
    "resend" they go back to pending and are sent again with the same
    Message-ID (clients drop the repeat); with "hold" they wait for a person.
    """
    cutoff = timezone.now() - timezone.timedelta(seconds=older_than_seconds)
    stuck = OutboxMessage.objects.filter(status=OutboxStatus.SENDING, sending_started_at__lt=cutoff)
    if settings.OUTBOX_STUCK_SENDS == "hold":
        return {"held": stuck.update(status=OutboxStatus.HELD, last_error="Held: the worker died while sending.")}
    return {"resent": stuck.update(status=OutboxStatus.PENDING, last_error="Worker died while sending; sending again.")}


# Messages whose action will not send them again: notices from an undo, or
# from an action that already finished.
_ORPHAN_AFTER = timezone.timedelta(minutes=1)
_ORPHAN_ATTEMPTS = 10
_ACTIONS_STILL_SENDING = ["queued", "running", "failed"]


def deliver_orphans(now=None) -> int:
    """Send pending messages that no action will retry; give up on one after a few attempts. Returns how many left."""
    now = now or timezone.now()
    orphans = (
        OutboxMessage.objects.filter(status=OutboxStatus.PENDING, created_at__lt=now - _ORPHAN_AFTER)
        .exclude(action__status__in=_ACTIONS_STILL_SENDING)
        .order_by("created_at")
    )
    sent = 0
    for message in orphans[:200]:
        if message.attempts >= _ORPHAN_ATTEMPTS:
            OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(status=OutboxStatus.FAILED)
            continue
        sent += _deliver_or_wait(message)
    return sent


def _deliver_or_wait(message: OutboxMessage) -> bool:
    """Deliver, or leave the message pending for the sweeper's next pass when the mail server fails."""
    try:
        return deliver(message)
    except IntegrationError as exc:
        logger.warning("Outbox message %s not sent yet, the sweeper will retry: %s", message.pk, exc)
        return False


def release(message: OutboxMessage) -> bool:
    """Send a held message after all (a person decided it had not gone out)."""
    return (
        OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.HELD).update(status=OutboxStatus.PENDING) == 1
    )


def deliver_soon(message: OutboxMessage) -> None:
    """Have a worker send the message once the current transaction commits (the sweeper retries it)."""
    from django_q.tasks import async_task

    message_pk = message.pk
    transaction.on_commit(lambda: async_task("integrations.outbox.deliver_pending", message_pk))


def deliver_pending(message_pk: int) -> bool:
    """The worker's task for deliver_soon: send the message if it is still pending."""
    message = OutboxMessage.objects.filter(pk=message_pk, status=OutboxStatus.PENDING).first()
    return message is not None and _deliver_or_wait(message)
