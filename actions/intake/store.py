"""Storing one raw message: once per mailbox and Message-ID, linked to its thread, flagged, with its run started.

Every source (IMAP, the API, imported files, demo mail) comes through
`ingest_message`. It never raises for bad mail: what cannot be stored as
mail is kept raw and quarantined with its reason, visible in the admin.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from actions.audit import record_audit
from actions.intake.automated import detect_automated
from actions.intake.parsing import ParsedMessage, Unparseable, parse_message
from actions.models import (
    Attachment,
    Email,
    EmailSource,
    EmailStatus,
    ProcessingRun,
)
from actions.runlog import enqueue_run_on_commit, start_run

logger = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^<>\s]{1,900}>)", re.IGNORECASE | re.MULTILINE)
_EMAIL_FIELD_LENGTHS = {"from_address": 254, "from_name": 254, "subject": 998, "message_id": 998, "in_reply_to": 998}


@dataclass(frozen=True)
class IngestResult:
    """What happened to one message: the stored email, and whether this call stored it."""

    email: Email
    created: bool  # False: the mailbox already had this Message-ID
    quarantined: bool
    run: ProcessingRun | None = None  # the run this call started, when it stored the email


def _already_stored(email: Email) -> IngestResult:
    return IngestResult(email, created=False, quarantined=email.status == EmailStatus.QUARANTINED)


def ingest_message(
    raw: bytes, *, mailbox: str, source: EmailSource | str = EmailSource.IMPORT, process: bool | None = None
) -> IngestResult:
    """Store `raw` as an email of `mailbox` and start its processing run; quarantine what is not mail.

    `process` (default: the PROCESS_ON_INTAKE setting) queues the run for a
    worker once the message is committed.
    """
    if len(raw) > settings.MAX_MESSAGE_BYTES:
        reason = (
            f"The message is {len(raw):,} bytes, over the limit of {settings.MAX_MESSAGE_BYTES:,} "
            "(MAX_MESSAGE_BYTES); its content was not stored."
        )
        return _quarantine(raw, b"", mailbox=mailbox, source=source, reason=reason)
    try:
        parsed = parse_message(raw)
    except Unparseable as exc:
        return _quarantine(raw, raw, mailbox=mailbox, source=source, reason=str(exc))
    return _store(raw, parsed, mailbox=mailbox, source=source, process=process)


def _store(raw: bytes, parsed: ParsedMessage, *, mailbox: str, source: str, process: bool | None) -> IngestResult:
    # As it will be stored: PostgreSQL refuses a NUL even in a query's parameters.
    message_id = _clean(parsed.message_id or _synthetic_message_id(raw))[:998]
    existing = Email.objects.filter(mailbox=mailbox, message_id=message_id).first()
    if existing is not None:
        return _already_stored(existing)
    automated, automated_reason = detect_automated(parsed)
    fields = _text_fields(
        {
            "message_id": message_id,
            "in_reply_to": parsed.in_reply_to,
            "references": parsed.references,
            "from_address": parsed.from_address,
            "from_name": parsed.from_name,
            "to": parsed.to,
            "cc": parsed.cc,
            "subject": parsed.subject,
            "text_body": parsed.text_body,
            "html_body": parsed.html_body,
            "headers": [list(pair) for pair in parsed.headers],
            "automated": automated,
        }
    )
    log = [f"Received by {source} into {mailbox}: {len(raw):,} bytes, {len(parsed.attachments)} attachment(s)."]
    log += [f"Parsing: {defect}" for defect in parsed.defects]
    if automated:
        log.append(f"Automated mail ({automated}): {automated_reason}. It is never answered automatically.")
    try:
        with transaction.atomic():
            email = Email.objects.create(
                mailbox=mailbox,
                raw=raw,
                size=len(raw),
                source=source,
                received_at=parsed.date if parsed.date and parsed.date <= timezone.now() else timezone.now(),
                status_reason=automated_reason,
                parent=_parent(mailbox, fields["in_reply_to"], fields["references"]),
                **fields,
            )
            # A reply that arrived before the message it answers finds its parent now.
            Email.objects.filter(mailbox=mailbox, parent__isnull=True, in_reply_to=email.message_id).exclude(
                pk=email.pk
            ).update(parent=email)
            for part in parsed.attachments:
                _store_attachment(email, part)
            run = start_run(email, log)
            record_audit(
                "email.received",
                target=email,
                actor=str(source),
                details={"mailbox": mailbox, "message_id": email.message_id, "automated": automated},
            )
            if process if process is not None else settings.PROCESS_ON_INTAKE:
                enqueue_run_on_commit(run.pk)
    except IntegrityError:
        # The same message stored by a concurrent intake (two pollers, a retried webhook).
        existing = Email.objects.filter(mailbox=mailbox, message_id=fields["message_id"]).first()
        if existing is None:
            raise
        return _already_stored(existing)
    return IngestResult(email, created=True, quarantined=False, run=run)


def _quarantine(raw: bytes, kept: bytes, *, mailbox: str, source: str, reason: str) -> IngestResult:
    """Keep what arrived (raw, unless too large) with the reason it is not processed."""
    match = _MESSAGE_ID.search(raw[:65536])
    message_id = _clean(match.group(1).decode("ascii", "replace")) if match else _synthetic_message_id(raw)
    with transaction.atomic():
        email, created = Email.objects.get_or_create(
            mailbox=mailbox,
            message_id=message_id,
            defaults={
                "raw": kept,
                "size": len(raw),
                "source": source,
                "status": EmailStatus.QUARANTINED,
                "status_reason": reason,
                "subject": "(quarantined)",
            },
        )
        if not created:
            return _already_stored(email)
        run = start_run(
            email, [f"Received by {source} into {mailbox}: {len(raw):,} bytes."], failed=f"Quarantined: {reason}"
        )
        record_audit(
            "email.quarantined",
            target=email,
            actor=str(source),
            details={"mailbox": mailbox, "reason": reason, "size": len(raw)},
        )
        logger.warning("Quarantined a message for %s (%s bytes): %s", mailbox, len(raw), reason)
    return IngestResult(email, created=True, quarantined=True, run=run)


def _parent(mailbox: str, in_reply_to: str, references: list[str]) -> Email | None:
    """The stored message this one answers: In-Reply-To first, else the latest of References we have."""
    candidates = [in_reply_to, *reversed(references)] if in_reply_to else list(reversed(references))
    candidates = [c for c in candidates if c]
    if not candidates:
        return None
    found = {e.message_id: e for e in Email.objects.filter(Q(mailbox=mailbox) & Q(message_id__in=candidates))}
    return next((found[c] for c in candidates if c in found), None)


def _store_attachment(email: Email, part) -> None:
    attachment = Attachment(
        email=email,
        filename=_clean(part.filename)[:255] or "attachment",
        content_type=_clean(part.content_type)[:255] or "application/octet-stream",
        size=len(part.content),
        sha256=hashlib.sha256(part.content).hexdigest(),
        content_id=_clean(part.content_id)[:255],
    )
    attachment.file.save(attachment.filename, ContentFile(part.content), save=False)
    attachment.save()


def _synthetic_message_id(raw: bytes) -> str:
    # The same bytes give the same id, so a message without one is still stored once.
    return f"<sha256-{hashlib.sha256(raw).hexdigest()}@mailroom.invalid>"


def _clean(value: Any) -> Any:
    """Text the databases accept: no NUL characters (PostgreSQL refuses them) and no lone surrogates."""
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _text_fields(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned = {name: _clean(value) for name, value in fields.items()}
    for name, length in _EMAIL_FIELD_LENGTHS.items():
        cleaned[name] = cleaned[name][:length]
    return cleaned
