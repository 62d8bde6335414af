"""Archiving on the IMAP server: move the email's message to the archive folder, and back for undo.

The message is found by the UID intake recorded while the folder's
UIDVALIDITY still matches, else by its Message-ID. It moves with UID MOVE
(RFC 6851) where the server has it, else with UID COPY, \\Deleted and UID
EXPUNGE (UIDPLUS), which removes only this message. Its UID in the other
folder is learnt by searching there from the folder's UIDNEXT before the
move (imapclient does not pass COPYUID on), and the email's imap_* fields
follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from imapclient import DELETED, SEEN, IMAPClient
from imapclient.exceptions import IMAPClientError

from actions.models import Email
from integrations.base import Health
from integrations.errors import IntegrationError
from integrations.imap.connection import ImapSettings, session
from integrations.imap.poll import record_location
from integrations.mailbox import MailboxBackend

# Intake names a message without a Message-ID like this; the server knows no such header.
_SYNTHETIC_ID_SUFFIX = "@mailroom.invalid>"
# \Recent belongs to the server's session and cannot be set; it is not worth keeping.
_SESSION_FLAGS = {b"\\Recent"}


@dataclass(frozen=True)
class Location:
    """Where a message sits: folder, UID (None: not known) and the folder's UIDVALIDITY."""

    folder: str
    uid: int | None = None
    uidvalidity: int | None = None


class ImapMailbox(MailboxBackend):
    """The mailbox on the IMAP server the mail came from: archiving moves the message to IMAP_ARCHIVE_FOLDER."""

    name = "imap"

    def __init__(self, cfg: ImapSettings | None = None, archive_folder: str | None = None) -> None:
        self.cfg = cfg or ImapSettings.from_settings()
        self.archive_folder = archive_folder or settings.IMAP_ARCHIVE_FOLDER

    def why_not(self, email: Email) -> str:
        if not email.imap_folder:
            return f"It did not come from IMAP (it came by {email.get_source_display()}): only Mailroom's flag is set."
        return ""

    def health(self) -> Health:
        # Four round trips (greeting, LOGIN, NOOP, LOGOUT), each with its share of the time.
        cfg = replace(self.cfg, timeout=max(1.0, self.cfg.timeout / 4))
        if not cfg.configured:
            return self.unhealthy("IMAP_HOST is not set.")
        try:
            with session(cfg) as client:
                client.noop()
        except IntegrationError as exc:
            return self.unhealthy(str(exc))
        return self.healthy(f"{cfg.where} answers and accepts the login.")

    def archive(self, email: Email) -> dict[str, Any]:
        """Move the message to the archive folder and mark it \\Seen; where it was and is, for `restore`."""
        origin = Location(email.imap_folder, email.imap_uid, email.imap_uidvalidity)
        if not origin.folder:
            raise IntegrationError(
                f"Email {email.pk} did not come from IMAP: there is no message to move.", permanent=True
            )
        if origin.folder == self.archive_folder:
            return {
                "moved": False,
                "why": f"It is in {self.archive_folder!r} already.",
                "archive_folder": origin.folder,
            }
        with session(self.cfg) as client:
            ensure_folder(client, self.archive_folder)
            found = locate(client, origin, email.message_id)
            if found is None:
                moved = locate(client, Location(self.archive_folder), email.message_id)
                if moved is None:
                    raise _not_found(email, origin.folder, self.archive_folder)
                # A first attempt moved it and was cut short before recording that; its flags are gone.
                flags = None
            else:
                origin, flags = found, _flags(client, found.uid)
                moved = move_message(client, origin, self.archive_folder, email.message_id)
            if moved.uid is not None:
                client.add_flags([moved.uid], [SEEN])  # move_message leaves the target folder selected
        record_location(email.pk, moved.folder, moved.uid, moved.uidvalidity, only_from=email.imap_folder)
        return {
            "moved": True,
            "folder": origin.folder,
            "uid": origin.uid,
            "uidvalidity": origin.uidvalidity,
            "archive_folder": moved.folder,
            "archive_uid": moved.uid,
            "archive_uidvalidity": moved.uidvalidity,
            "flags": None if flags is None else [flag.decode() for flag in flags],
        }

    def restore(self, email: Email, archived: dict[str, Any]) -> dict[str, Any]:
        """Move the message back to the folder it was archived from, \\Seen again only if it was before."""
        where = Location(archived["archive_folder"], archived.get("archive_uid"), archived.get("archive_uidvalidity"))
        back_to = archived["folder"]
        with session(self.cfg) as client:
            found = locate(client, where, email.message_id)
            if found is None:
                raise _not_found(email, where.folder)
            ensure_folder(client, back_to)
            here = move_message(client, found, back_to, email.message_id)
            flags = archived.get("flags")
            seen = flags is None or "\\Seen" in flags  # unknown: leave it read rather than guess
            if here.uid is not None and not seen:
                client.remove_flags([here.uid], [SEEN])
        record_location(email.pk, here.folder, here.uid, here.uidvalidity)
        return {"folder": here.folder, "uid": here.uid, "uidvalidity": here.uidvalidity, "seen": seen}


def ensure_folder(client: IMAPClient, folder: str) -> None:
    """Create `folder` unless it exists."""
    if client.folder_exists(folder):
        return
    try:
        client.create_folder(folder)
    except IMAPClientError as exc:
        if "ALREADYEXISTS" not in str(exc).upper():  # created meanwhile by someone else: fine
            raise


def locate(client: IMAPClient, where: Location, message_id: str) -> Location | None:
    """Where the message is in `where.folder` (left selected): by UID while UIDVALIDITY holds, else by Message-ID."""
    if not client.folder_exists(where.folder):
        return None
    uidvalidity = int(client.select_folder(where.folder)[b"UIDVALIDITY"])
    found = []
    if where.uid is not None and where.uidvalidity == uidvalidity:
        # A single UID never matches another message: under one UIDVALIDITY a UID is never reused.
        found = client.search(["UID", str(where.uid)])
    if not found and not message_id.endswith(_SYNTHETIC_ID_SUFFIX):
        found = client.search(["HEADER", "Message-ID", message_id])
    return Location(where.folder, max(found), uidvalidity) if found else None


def move_message(
    client: IMAPClient, source: Location, folder: str, message_id: str, *, use_move: bool | None = None
) -> Location:
    """Move the message at `source` (its folder selected) to `folder`; where it is now, its folder left selected.

    `use_move` forces UID MOVE (True) or the UIDPLUS fallback (False); by default the server's capabilities choose.
    """
    status = client.folder_status(folder, [b"UIDNEXT"])
    uidnext = int(status[b"UIDNEXT"])
    if use_move is None:
        use_move = client.has_capability("MOVE")
    if use_move:
        client.move([source.uid], folder)
    elif client.has_capability("UIDPLUS"):
        client.copy([source.uid], folder)
        client.add_flags([source.uid], [DELETED])
        # UID EXPUNGE removes this message only, not others a mail client flagged \Deleted.
        client.uid_expunge([source.uid])
    else:
        raise IntegrationError(
            "The IMAP server has neither MOVE nor UIDPLUS: Mailroom cannot move one message without "
            "expunging others. Set MAILBOX_BACKEND=local.",
            permanent=True,
        )
    selected = client.select_folder(folder)
    criteria: list[Any] = ["UID", f"{uidnext}:*"]
    if not message_id.endswith(_SYNTHETIC_ID_SUFFIX):
        criteria += ["HEADER", "Message-ID", message_id]
    # "n:*" matches the highest UID even below n: keep only those the move made.
    new = [uid for uid in client.search(criteria) if uid >= uidnext]
    return Location(folder, min(new) if new else None, int(selected[b"UIDVALIDITY"]))


def _flags(client: IMAPClient, uid: int) -> tuple[bytes, ...]:
    flags = client.get_flags([uid]).get(uid, ())
    return tuple(flag for flag in flags if flag not in _SESSION_FLAGS)


def _not_found(email: Email, folder: str, also: str = "") -> IntegrationError:
    nor = f" (nor in {also!r})" if also else ""
    return IntegrationError(
        f"The message {email.message_id} is no longer in {folder!r} on the IMAP server{nor}: "
        "it was moved or deleted there since.",
        permanent=True,
    )
