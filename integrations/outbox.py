"""The outbox: every message Mailroom sends is stored here first, then delivered through Django's email backend.

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
import smtplib
from email import encoders
from email.errors import MessageError
from email.message import Message
from email.mime.base import MIMEBase
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import SafeMIMEText
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations.errors import IntegrationError
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
    """Store a message to send, or return the one already stored under that Message-ID."""
    if not to and not cc:
        # Django's backend "sends" a message without recipients by doing nothing.
        raise ValueError("A message needs at least one recipient.")
    # Attachment names and types end up in MIME headers too, and often come from strangers' mail.
    described = [value for part in attachments or [] for value in (part["filename"], part["content_type"])]
    for value in [subject, from_email, *to, *(cc or []), *(headers or {}), *(headers or {}).values(), *described]:
        if "\r" in value or "\n" in value:
            raise ValueError(f"Line break in a header value: {value!r}")
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


def _as_email(message: OutboxMessage) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
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
        if ";" in part["content_type"]:
            email.attach(_part_with_parameters(part["filename"], part["content_type"], content))
        else:
            email.attach(part["filename"], content, part["content_type"])
    return email


def _part_with_parameters(filename: str, content_type: str, content: bytes) -> MIMEBase:
    """A MIME attachment whose content type carries parameters (text/calendar; method=REQUEST), each once.

    Django's attach() takes the parameters for part of the subtype and then
    adds a charset of its own, so "charset" came out twice.
    """
    header = Message()
    header["Content-Type"] = content_type
    maintype, subtype = header.get_content_maintype(), header.get_content_subtype()
    parameters = [(name, value) for name, value in header.get_params()[1:] if name.lower() != "charset"]
    if maintype == "text":
        part = SafeMIMEText(content.decode(header.get_content_charset() or "utf-8"), subtype, "utf-8")
        for name, value in parameters:
            part.set_param(name, value)
    else:
        part = MIMEBase(maintype, subtype, **dict(parameters))
        part.set_payload(content)
        encoders.encode_base64(part)
    if filename.isascii():
        part.add_header("Content-Disposition", "attachment", filename=filename)
    else:
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
    return part


def _build(message: OutboxMessage) -> EmailMultiAlternatives:
    """The message as Django sends it; raises ValueError when it cannot be written as MIME."""
    try:
        email = _as_email(message)
        # Rendering is where bad headers and encodings surface (some only when folded).
        email.message().as_bytes()
    except (ValueError, TypeError, KeyError, LookupError, binascii.Error, MessageError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc
    return email


def _send(email: EmailMultiAlternatives) -> None:
    """Hand one message to the mail server; a failure after the server accepted it does not count."""
    connection = get_connection(fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
    try:
        # Opened here, so send_messages() leaves closing to us: an error at QUIT must not
        # turn a message the server accepted into a failure that is sent again.
        connection.open()
        connection.send_messages([email])
    finally:
        smtp_session = getattr(connection, "connection", None)
        try:
            connection.close()
        except (smtplib.SMTPException, OSError) as exc:
            logger.warning("Closing the mail server connection failed: %s", exc)
            if smtp_session is not None:
                smtp_session.close()  # QUIT failed; Django dropped its reference, not the socket.


def deliver(message: OutboxMessage) -> bool:
    """Send one stored message once; return False when it was already sent or is not ours to send.

    Raises IntegrationError when the mail server fails: permanent for a 5xx
    refusal, transient for 4xx replies and connection trouble. The row is
    then back in `pending` (transient) or `failed` (permanent).
    """
    now = timezone.now()
    claimed = OutboxMessage.objects.filter(pk=message.pk, status=OutboxStatus.PENDING).update(
        status=OutboxStatus.SENDING, sending_started_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return False
    message.refresh_from_db()
    try:
        email = _build(message)
    except ValueError as exc:
        # Left `sending`, it would wait for recovery and then fail the same way, forever.
        _record_failure(message, f"Cannot build the message: {exc}", permanent=True)
        raise IntegrationError(f"The message cannot be built: {exc}", permanent=True) from exc
    try:
        _send(email)
    except smtplib.SMTPResponseException as exc:
        permanent = 500 <= exc.smtp_code < 600
        _record_failure(message, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent)
        raise IntegrationError(f"The mail server refused the message: {exc.smtp_code}", permanent=permanent) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        permanent = all(500 <= code < 600 for code in codes)
        _record_failure(message, f"Recipients refused: {exc.recipients!r}", permanent)
        raise IntegrationError("The mail server refused the recipients.", permanent=permanent) from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        _record_failure(message, f"{type(exc).__name__}: {exc}", permanent=False)
        raise IntegrationError(f"Could not reach the mail server: {exc}") from exc
    except Exception as exc:
        # Not the mail server's answer (a bug, or an encoding the build check missed): back to
        # pending for the next attempt, not left looking like a worker that died mid-send.
        _record_failure(message, f"{type(exc).__name__}: {exc}", permanent=False)
        raise
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.SENT, sent_at=timezone.now(), last_error="")
    return True


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
