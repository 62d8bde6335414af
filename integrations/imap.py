"""Mail in over IMAP: read new messages from the configured folders and hand each to intake.

Polling only reads. Folders are selected read-only and bodies fetched with
BODY.PEEK[], so mail is never marked read, moved or deleted: the mailbox
stays the record and a person's mail client sees it unchanged.

Each folder has a MailboxCursor: the folder's UIDVALIDITY and the highest
UID handed to intake. The cursor advances after every message, so a crash
loses nothing: at worst the message being stored is fetched again next
time, and intake stores each Message-ID once per mailbox. When the server
changes UIDVALIDITY, the folder is read again from the start, and again
Message-IDs keep what is already stored from being stored twice.

One broken message never blocks the mailbox. Bad content is intake's job
(it quarantines it). A message that cannot be read or stored at all (the
server refuses to send it or sends no body, intake raises) is skipped: it
stays in the folder untouched, is logged with its UID, and stays named in
the cursor's `last_error` until a person clears it there. Only a database
outage stops a poll on a message, so that the message is tried again.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from actions.intake.store import ingest_message
from actions.models import EmailSource
from integrations.errors import IntegrationError
from integrations.models import MailboxCursor

logger = logging.getLogger(__name__)

# How many lines of skipped messages a cursor keeps in last_error.
MAX_SKIPPED_LINES = 50
_SKIPPED_LINE = re.compile(r"^\S+ UID \d+ skipped")
_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(<[^<>\s]{1,200}>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ImapSettings:
    """Where and how to read mail; `from_settings()` reads the IMAP_* settings."""

    host: str
    port: int = 993
    ssl: bool = True
    starttls: bool = False
    user: str = ""
    password: str = field(default="", repr=False)  # never in a repr, a log line or an error
    folders: tuple[str, ...] = ("INBOX",)
    mailbox: str = ""  # the mailbox's name in Mailroom: Email.mailbox and MailboxCursor.mailbox
    timeout: float = 30
    batch_size: int = 50

    @classmethod
    def from_settings(cls) -> ImapSettings:
        """The configured IMAP account (host "" when IMAP is off)."""
        return cls(
            host=settings.IMAP_HOST,
            port=settings.IMAP_PORT,
            ssl=settings.IMAP_SSL,
            starttls=settings.IMAP_STARTTLS,
            user=settings.IMAP_USER,
            password=settings.IMAP_PASSWORD,
            folders=tuple(settings.IMAP_FOLDERS),
            mailbox=settings.IMAP_MAILBOX,
            timeout=settings.IMAP_TIMEOUT_SECONDS,
            batch_size=settings.IMAP_BATCH_SIZE,
        )

    @property
    def configured(self) -> bool:
        return bool(self.host)

    def with_folders(self, folders: list[str] | tuple[str, ...]) -> ImapSettings:
        return replace(self, folders=tuple(folders))

    def scrub(self, text: str) -> str:
        """`text` with the password blanked out, should a server or library ever echo it."""
        return text.replace(self.password, "********") if self.password else text


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


# Called with (folder, number of new UIDs) once per folder, and (folder, uid) after each message.
FoundHook = Callable[[str, int], None]
MessageHook = Callable[[str, int], None]


def connect(cfg: ImapSettings) -> IMAPClient:
    """A logged-in client; IntegrationError (permanent for bad credentials or settings) when that fails."""
    if not cfg.configured:
        raise IntegrationError("IMAP_HOST is not set", permanent=True)
    where = f"IMAP server {cfg.host}:{cfg.port}"
    try:
        client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.ssl, timeout=cfg.timeout)
    except (OSError, IMAPClientError) as exc:
        raise _connection_error(cfg, f"Cannot connect to {where}", exc) from None
    if cfg.starttls and not cfg.ssl:
        try:
            client.starttls()
        except (OSError, IMAPClientAbortError) as exc:
            _close(client)
            raise _connection_error(cfg, f"Cannot start TLS with {where}", exc) from None
        except IMAPClientError as exc:
            _close(client)
            raise IntegrationError(cfg.scrub(f"{where} refused STARTTLS: {_text(exc)}"), permanent=True) from None
    try:
        client.login(cfg.user, cfg.password)
    except LoginError as exc:
        _close(client)
        raise IntegrationError(
            cfg.scrub(f"{where} refused the login of {cfg.user!r}: {_text(exc)}"), permanent=True
        ) from None
    except (OSError, IMAPClientError) as exc:
        _close(client)
        raise _connection_error(cfg, f"Cannot log in to {where}", exc) from None
    return client


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
        raise _connection_error(cfg, f"Lost the IMAP connection selecting {folder!r}", exc) from None
    except IMAPClientError as exc:
        raise IntegrationError(cfg.scrub(f"Cannot open folder {folder!r}: {_text(exc)}"), permanent=True) from None
    uidvalidity = int(selected[b"UIDVALIDITY"])

    cursor, _ = MailboxCursor.objects.get_or_create(mailbox=cfg.mailbox, folder=folder)
    cursor.last_error = _skipped_only(cursor.last_error)  # the folder opened: earlier poll failures are over
    if cursor.uidvalidity != uidvalidity:
        if cursor.uidvalidity is not None:
            logger.warning(
                "UIDVALIDITY of %s/%s changed from %s to %s: reading the folder again from the start",
                cfg.mailbox,
                folder,
                cursor.uidvalidity,
                uidvalidity,
            )
            result.uidvalidity_reset = True
        cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
    cursor.save(update_fields=["uidvalidity", "last_uid", "last_error"])

    try:
        # "n:*" always matches the highest UID, even one below n: keep only the new ones.
        uids = sorted(uid for uid in client.search(["UID", f"{cursor.last_uid + 1}:*"]) if uid > cursor.last_uid)
    except (OSError, IMAPClientError) as exc:
        raise _connection_error(cfg, f"Cannot search {folder!r}", exc) from None
    result.found = len(uids)
    if on_found:
        on_found(folder, len(uids))

    for start in range(0, len(uids), cfg.batch_size):
        if deadline is not None and time.monotonic() > deadline:
            result.left = len(uids) - start
            break
        batch = uids[start : start + cfg.batch_size]
        for uid, raw in _fetch(client, cfg, folder, batch).items():
            problem = raw if isinstance(raw, str) else _ingest(cfg, folder, uid, raw, result)
            if problem:
                _skip(cursor, folder, uid, cfg.scrub(problem)[:500], result)
            else:
                _advance(cursor, uid)
            if on_message:
                on_message(folder, uid)

    MailboxCursor.objects.filter(pk=cursor.pk).update(last_polled_at=timezone.now())
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
            _record_failure(cfg, cfg.folders, str(exc))
        raise
    results: dict[str, PollResult] = {}
    try:
        for folder in cfg.folders:
            try:
                results[folder] = poll_folder(
                    client, cfg, folder, on_found=on_found, on_message=on_message, deadline=deadline
                )
            except IntegrationError as exc:
                _record_failure(cfg, [folder], str(exc))
                if not exc.permanent:
                    raise
                logger.error("IMAP %s/%s: %s", cfg.mailbox, folder, exc)
                results[folder] = PollResult(not_polled=str(exc), errors=[str(exc)])
    finally:
        _close(client)
    return results


def health() -> str:
    """Why the configured IMAP account cannot be used, or "" when it can (or IMAP is off)."""
    cfg = ImapSettings.from_settings()
    if not cfg.configured:
        return ""
    try:
        _close(connect(cfg))
    except IntegrationError as exc:
        return str(exc)
    return ""


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


def _ingest(cfg: ImapSettings, folder: str, uid: int, raw: bytes, result: PollResult) -> str:
    """Hand one message to intake and count what happened; why it failed, or ""."""
    result.fetched += 1
    try:
        stored = ingest_message(raw, mailbox=cfg.mailbox, source=EmailSource.IMAP)
    except (OperationalError, InterfaceError):
        # The database is down: stop the poll here, so this message is fetched again next time.
        raise
    except Exception as exc:
        # Anything else is this message's problem: it must not block the ones after it.
        logger.exception("IMAP %s/%s UID %s: intake failed", cfg.mailbox, folder, uid)
        return f"intake failed ({_message_id(raw)}): {type(exc).__name__}: {exc}"
    if not stored.created:
        result.duplicates += 1
    else:
        result.created += 1
        result.quarantined += 1 if stored.quarantined else 0
    return ""


def _fetch(client: IMAPClient, cfg: ImapSettings, folder: str, uids: list[int]) -> dict[int, bytes | str]:
    """Each UID's raw message in UID order, or (text) why the server did not send it."""
    try:
        response = client.fetch(uids, ["BODY.PEEK[]"])  # PEEK: fetching must not set \Seen
    except (OSError, IMAPClientAbortError) as exc:
        raise _connection_error(cfg, f"Cannot fetch from {folder!r}", exc) from None
    except IMAPClientError as exc:
        if len(uids) == 1:
            return {uids[0]: f"the server refused to send it: {_text(exc)}"}
        # One damaged message can make the server refuse the whole batch: ask one by one.
        return {uid: body for one in uids for uid, body in _fetch(client, cfg, folder, [one]).items()}
    missing = "the server returned no body (expunged meanwhile, or unreadable)"
    bodies: dict[int, bytes | str] = {}
    for uid in uids:
        raw = response.get(uid, {}).get(b"BODY[]")
        bodies[uid] = missing if raw is None else bytes(raw)
    return bodies


# --- Cursor bookkeeping ---


def _advance(cursor: MailboxCursor, uid: int, **fields) -> None:
    """Move the cursor past `uid` (and save `fields` with it)."""
    # Compare-and-set: a concurrent poll that got further is never moved back,
    # and a poll that raced a UIDVALIDITY reset writes nothing.
    MailboxCursor.objects.filter(pk=cursor.pk, uidvalidity=cursor.uidvalidity, last_uid__lt=uid).update(
        last_uid=uid, **fields
    )
    cursor.last_uid = max(cursor.last_uid, uid)


def _skip(cursor: MailboxCursor, folder: str, uid: int, problem: str, result: PollResult) -> None:
    """Move past a message that cannot be stored, naming it where a person will look."""
    line = f"{_now()} UID {uid} skipped, still in {folder!r}: {problem}"
    logger.error("IMAP %s/%s: %s", cursor.mailbox, folder, line)
    result.failed += 1
    result.errors.append(f"UID {uid}: {problem}")
    lines = [*cursor.last_error.splitlines(), line][-MAX_SKIPPED_LINES:]
    cursor.last_error = "\n".join(lines)
    # In the same statement as the move past it, so the note survives a crash right after.
    _advance(cursor, uid, last_error=cursor.last_error)


def _record_failure(cfg: ImapSettings, folders: Iterable[str], error: str) -> None:
    """Note a failed poll on each folder's cursor, keeping the skipped messages named there."""
    try:
        for folder in folders:
            cursor, _ = MailboxCursor.objects.get_or_create(mailbox=cfg.mailbox, folder=folder)
            lines = [*_skipped_only(cursor.last_error).splitlines(), f"{_now()} {cfg.scrub(error)}"]
            cursor.last_error = "\n".join(lines)
            cursor.last_polled_at = timezone.now()
            cursor.save(update_fields=["last_error", "last_polled_at"])
    except DatabaseError:
        # The poll's own error is the one to report; this one is only logged.
        logger.exception("IMAP %s: could not record the failed poll", cfg.mailbox)


def _skipped_only(last_error: str) -> str:
    return "\n".join(line for line in last_error.splitlines() if _SKIPPED_LINE.match(line))


# --- Small helpers ---


def _connection_error(cfg: ImapSettings, what: str, exc: BaseException) -> IntegrationError:
    """An IntegrationError for a failed connection: permanent only when settings, not the network, are wrong."""
    if isinstance(exc, TimeoutError):  # socket.timeout too
        return IntegrationError(f"{what}: no answer within {cfg.timeout:g} s")
    if isinstance(exc, socket.gaierror):
        return IntegrationError(f"{what}: the host name does not resolve ({exc.strerror or exc})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return IntegrationError(
            cfg.scrub(f"{what}: its TLS certificate is not trusted ({exc.verify_message})"), permanent=True
        )
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        return IntegrationError(cfg.scrub(f"{what}: {exc.strerror or exc}"))
    return IntegrationError(cfg.scrub(f"{what}: {_text(exc)}"))


def _text(exc: BaseException) -> str:
    """The server's words from an imaplib error, without the bytes-literal wrapping."""
    text = str(exc)
    match = re.fullmatch(r"b(['\"])(.*)\1", text)
    return match.group(2) if match else text


def _message_id(raw: bytes) -> str:
    match = _MESSAGE_ID.search(raw[:65536])
    return f"Message-ID {match.group(1).decode('ascii', 'replace')}" if match else "no Message-ID"


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except (OSError, IMAPClientError):
        # Leaving anyway; a dead connection cannot be logged out of.
        with contextlib.suppress(OSError, IMAPClientError):
            client.shutdown()


def _now() -> str:
    return timezone.now().isoformat(timespec="seconds")
