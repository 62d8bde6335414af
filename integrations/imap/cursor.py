"""Each folder's MailboxCursor: its UIDVALIDITY, the highest UID handed to intake, and what went wrong.

The cursor advances after every message, so a crash loses nothing: at worst
the message being stored is fetched again next time, and intake stores each
Message-ID once per mailbox. Messages that could not be stored stay named in
`last_error` until a person clears them there; failures of a whole poll are
replaced by the next poll's outcome.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from django.db import DatabaseError
from django.utils import timezone

from integrations.imap.connection import ImapSettings
from integrations.models import MailboxCursor

logger = logging.getLogger(__name__)

# How many lines of skipped messages a cursor keeps in last_error.
MAX_SKIPPED_LINES = 50
_SKIPPED_LINE = re.compile(r"^\S+ UID \d+ skipped")


def open_cursor(cfg: ImapSettings, folder: str, uidvalidity: int) -> tuple[MailboxCursor, bool]:
    """The folder's cursor, started again from UID 0 if UIDVALIDITY changed; and whether it did."""
    cursor, _ = MailboxCursor.objects.get_or_create(mailbox=cfg.mailbox, folder=folder)
    cursor.last_error = skipped_only(cursor.last_error)  # the folder opened: earlier poll failures are over
    reset = False
    if cursor.uidvalidity != uidvalidity:
        if cursor.uidvalidity is not None:
            logger.warning(
                "UIDVALIDITY of %s/%s changed from %s to %s: reading the folder again from the start",
                cfg.mailbox,
                folder,
                cursor.uidvalidity,
                uidvalidity,
            )
            reset = True
        cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
    cursor.save(update_fields=["uidvalidity", "last_uid", "last_error"])
    return cursor, reset


def advance(cursor: MailboxCursor, uid: int, **fields) -> None:
    """Move the cursor past `uid` (and save `fields` with it)."""
    # Compare-and-set: a concurrent poll that got further is never moved back,
    # and a poll that raced a UIDVALIDITY reset writes nothing.
    MailboxCursor.objects.filter(pk=cursor.pk, uidvalidity=cursor.uidvalidity, last_uid__lt=uid).update(
        last_uid=uid, **fields
    )
    cursor.last_uid = max(cursor.last_uid, uid)


def skip(cursor: MailboxCursor, folder: str, uid: int, problem: str) -> None:
    """Move past a message that cannot be stored, naming it where a person will look."""
    line = f"{_now()} UID {uid} skipped, still in {folder!r}: {problem}"
    logger.error("IMAP %s/%s: %s", cursor.mailbox, folder, line)
    lines = [*cursor.last_error.splitlines(), line][-MAX_SKIPPED_LINES:]
    cursor.last_error = "\n".join(lines)
    # In the same statement as the move past it, so the note survives a crash right after.
    advance(cursor, uid, last_error=cursor.last_error)


def record_failure(cfg: ImapSettings, folders: Iterable[str], error: str) -> None:
    """Note a failed poll on each folder's cursor, keeping the skipped messages named there."""
    try:
        for folder in folders:
            cursor, _ = MailboxCursor.objects.get_or_create(mailbox=cfg.mailbox, folder=folder)
            lines = [*skipped_only(cursor.last_error).splitlines(), f"{_now()} {cfg.scrub(error)}"]
            cursor.last_error = "\n".join(lines)
            cursor.last_polled_at = timezone.now()
            cursor.save(update_fields=["last_error", "last_polled_at"])
    except DatabaseError:
        # The poll's own error is the one to report; this one is only logged.
        logger.exception("IMAP %s: could not record the failed poll", cfg.mailbox)


def mark_polled(cursor: MailboxCursor) -> None:
    MailboxCursor.objects.filter(pk=cursor.pk).update(last_polled_at=timezone.now())


def skipped_only(last_error: str) -> str:
    return "\n".join(line for line in last_error.splitlines() if _SKIPPED_LINE.match(line))


def _now() -> str:
    return timezone.now().isoformat(timespec="seconds")
