"""Polling: hand every new message of the configured folders to intake, oldest first, never changing the folder.

Folders are selected read-only and bodies fetched with BODY.PEEK[], so
polling never marks mail read, moves or deletes it. Each stored email
remembers where it sits (folder, UID, UIDVALIDITY), for archiving by MOVE.

One broken message never blocks the mailbox. Bad content is intake's job
(it quarantines it). A message that cannot be read or stored at all (the
server refuses to send it or sends no body, intake raises) is skipped: it
stays in the folder untouched, is logged with its UID, and stays named in
the cursor's `last_error`. Only a database outage stops a poll on a message,
so that the message is tried again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.db.models import Q
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from actions.intake.store import ingest_message
from actions.models import Email, EmailSource
from integrations.errors import IntegrationError
from integrations.imap import cursor as cursors
from integrations.imap.connection import ImapSettings, close, connect, connection_error, text

logger = logging.getLogger(__name__)

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^<>\s]{1,200}>)", re.IGNORECASE | re.MULTILINE)


@dataclass
class PollResult:
    """What one poll of one folder did."""

    found: int = 0  # new UIDs on the server
    fetched: int = 0  # bodies received
    created: int = 0  # newly stored, quarantined ones included
    duplicates: int = 0  # already stored (same mailbox and Message-ID)
    quarantined: int = 0  # newly stored as quarantined
    failed: int = 0  # skipped: left in the folder, named in errors and the cursor's last_error
    left: int = 0  # not fetched this time (out of time); the next poll continues
    uidvalidity_reset: bool = False
    not_polled: str = ""  # why the folder could not be polled at all
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        if self.not_polled:
            return f"not polled: {self.not_polled}"
        parts = [f"{self.found} new on the server", f"{self.created} stored"]
        if self.quarantined:
            parts.append(f"{self.quarantined} of them quarantined")
        if self.duplicates:
            parts.append(f"{self.duplicates} already stored")
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.left:
            parts.append(f"{self.left} left for the next poll")
        if self.uidvalidity_reset:
            parts.append("UIDVALIDITY changed, read again from the start")
        return ", ".join(parts)


@dataclass(frozen=True)
class Fetched:
    """One message as the server sent it: its bytes and its flags at that moment."""

    raw: bytes
    flags: tuple[bytes, ...] = ()


# Called with (folder, number of new UIDs) once per folder, and (folder, uid) after each message.
FoundHook = Callable[[str, int], None]
MessageHook = Callable[[str, int], None]


def poll_folder(
    client: IMAPClient,
    cfg: ImapSettings,
    folder: str,
    *,
    on_found: FoundHook | None = None,
    on_message: MessageHook | None = None,
    deadline: float | None = None,
) -> PollResult:
    """Hand every message of `folder` newer than its cursor to intake, oldest first, never changing the folder.

    Raises IntegrationError when the connection fails (the cursor keeps what
    was done) and lets database outages through, without moving past the
    message they hit. `deadline` (time.monotonic()) stops between batches.
    """
    result = PollResult()
    try:
        selected = client.select_folder(folder, readonly=True)
    except IMAPClientAbortError as exc:
        raise connection_error(cfg, f"Lost the IMAP connection selecting {folder!r}", exc) from None
    except IMAPClientError as exc:
        raise IntegrationError(cfg.scrub(f"Cannot open folder {folder!r}: {text(exc)}"), permanent=True) from None
    uidvalidity = int(selected[b"UIDVALIDITY"])
    cursor, result.uidvalidity_reset = cursors.open_cursor(cfg, folder, uidvalidity)

    try:
        # "n:*" always matches the highest UID, even one below n: keep only the new ones.
        uids = sorted(uid for uid in client.search(["UID", f"{cursor.last_uid + 1}:*"]) if uid > cursor.last_uid)
    except (OSError, IMAPClientError) as exc:
        raise connection_error(cfg, f"Cannot search {folder!r}", exc) from None
    result.found = len(uids)
    if on_found:
        on_found(folder, len(uids))

    for start in range(0, len(uids), cfg.batch_size):
        if deadline is not None and time.monotonic() > deadline:
            result.left = len(uids) - start
            break
        batch = uids[start : start + cfg.batch_size]
        for uid, message in fetch(client, cfg, folder, batch).items():
            problem = message if isinstance(message, str) else _ingest(cfg, (folder, uid, uidvalidity), message, result)
            if problem:
                result.failed += 1
                result.errors.append(f"UID {uid}: {cfg.scrub(problem)[:500]}")
                cursors.skip(cursor, folder, uid, cfg.scrub(problem)[:500])
            else:
                cursors.advance(cursor, uid)
            if on_message:
                on_message(folder, uid)

    cursors.mark_polled(cursor)
    return result


def poll_mailbox(
    cfg: ImapSettings | None = None,
    *,
    on_found: FoundHook | None = None,
    on_message: MessageHook | None = None,
    deadline: float | None = None,
) -> dict[str, PollResult]:
    """Poll every folder of the account over one connection; IntegrationError when it cannot connect.

    A folder that cannot be opened is reported in its result (and cursor)
    and the others are still polled; a lost connection ends the poll.
    """
    cfg = cfg or ImapSettings.from_settings()
    try:
        client = connect(cfg)
    except IntegrationError as exc:
        if cfg.configured:
            cursors.record_failure(cfg, cfg.folders, str(exc))
        raise
    results: dict[str, PollResult] = {}
    try:
        for folder in cfg.folders:
            results[folder] = poll_recording_failure(
                client, cfg, folder, on_found=on_found, on_message=on_message, deadline=deadline
            )
    finally:
        close(client)
    return results


def poll_recording_failure(client: IMAPClient, cfg: ImapSettings, folder: str, **options) -> PollResult:
    """`poll_folder`, with a failure recorded on the cursor: a folder that cannot be opened is reported, not raised."""
    try:
        return poll_folder(client, cfg, folder, **options)
    except IntegrationError as exc:
        cursors.record_failure(cfg, [folder], str(exc))
        if not exc.permanent:
            raise
        logger.error("IMAP %s/%s: %s", cfg.mailbox, folder, exc)
        return PollResult(not_polled=str(exc), errors=[str(exc)])


def poll_configured_mailbox() -> str:
    """The scheduled job: poll the configured IMAP account once, recording the outcome on its cursors."""
    cfg = ImapSettings.from_settings()
    if not cfg.configured:
        return "IMAP is off: IMAP_HOST is not set."
    # Stop before the next run is due (and well before the worker's timeout), leaving the rest to it.
    budget = 0.8 * min(settings.IMAP_POLL_MINUTES * 60, settings.Q_TIMEOUT)
    try:
        results = poll_mailbox(cfg, deadline=time.monotonic() + budget)
    except IntegrationError as exc:
        # Recorded on the cursors; the next scheduled run is the retry.
        logger.warning("IMAP poll of %s failed: %s", cfg.mailbox, exc)
        return f"IMAP poll failed: {exc}"
    return "; ".join(f"{folder}: {result.summary()}" for folder, result in results.items())


def fetch(client: IMAPClient, cfg: ImapSettings, folder: str, uids: list[int]) -> dict[int, Fetched | str]:
    """Each UID's message and flags in UID order, or (text) why the server did not send it."""
    try:
        response = client.fetch(uids, ["FLAGS", "BODY.PEEK[]"])  # PEEK: fetching must not set \Seen
    except (OSError, IMAPClientAbortError) as exc:
        raise connection_error(cfg, f"Cannot fetch from {folder!r}", exc) from None
    except IMAPClientError as exc:
        if len(uids) == 1:
            return {uids[0]: f"the server refused to send it: {text(exc)}"}
        # One damaged message can make the server refuse the whole batch: ask one by one.
        return {uid: message for one in uids for uid, message in fetch(client, cfg, folder, [one]).items()}
    missing = "the server returned no body (expunged meanwhile, or unreadable)"
    messages: dict[int, Fetched | str] = {}
    for uid in uids:
        data = response.get(uid, {})
        raw = data.get(b"BODY[]")
        messages[uid] = missing if raw is None else Fetched(bytes(raw), tuple(data.get(b"FLAGS", ())))
    return messages


def record_location(email_id: int, folder: str, uid: int, uidvalidity: int, *, only_from: str | None = None) -> bool:
    """Remember where the email's message sits on the server; with `only_from`, only if it was still there.

    Compare-and-set, so a move recorded by someone else in between is never overwritten.
    """
    emails = Email.objects.filter(pk=email_id)
    if only_from is not None:
        emails = emails.filter(imap_folder=only_from)
    return bool(emails.update(imap_folder=folder, imap_uid=uid, imap_uidvalidity=uidvalidity))


def _ingest(cfg: ImapSettings, where: tuple[str, int, int], message: Fetched, result: PollResult) -> str:
    """Hand one message to intake, note where it sits, and count what happened; why it failed, or ""."""
    folder, uid, uidvalidity = where
    result.fetched += 1
    try:
        stored = ingest_message(message.raw, mailbox=cfg.mailbox, source=EmailSource.IMAP)
    except (OperationalError, InterfaceError):
        # The database is down: stop the poll here, so this message is fetched again next time.
        raise
    except Exception as exc:
        # Anything else is this message's problem: it must not block the ones after it.
        logger.exception("IMAP %s/%s UID %s: intake failed", cfg.mailbox, folder, uid)
        return f"intake failed ({_message_id(message.raw)}): {type(exc).__name__}: {exc}"
    # A message stored from another folder keeps that place; one seen again here (a
    # rebuilt folder, a new UIDVALIDITY) gets its new UID, so archiving finds it.
    Email.objects.filter(Q(imap_folder="") | Q(imap_folder=folder), pk=stored.email.pk).update(
        imap_folder=folder, imap_uid=uid, imap_uidvalidity=uidvalidity
    )
    if not stored.created:
        result.duplicates += 1
    else:
        result.created += 1
        result.quarantined += 1 if stored.quarantined else 0
    return ""


def _message_id(raw: bytes) -> str:
    match = _MESSAGE_ID.search(raw[:65536])
    return f"Message-ID {match.group(1).decode('ascii', 'replace')}" if match else "no Message-ID"
