"""Mail in over IMAP (imapclient): polling and IDLE hand new mail to intake; archiving moves it on the server.

- connection: the IMAP_* settings, logging in, errors as IntegrationError.
- poll: read new messages of the configured folders read-only and store each once.
- cursor: each folder's MailboxCursor (UIDVALIDITY, last UID, what failed).
- idle: `ingest_imap --idle`, a watcher per folder that waits in IDLE.
- archive: ImapMailbox, the "imap" mailbox backend: UID MOVE to the archive folder and back.
"""

from __future__ import annotations

from integrations.imap.archive import ImapMailbox, Location, move_message
from integrations.imap.connection import ImapSettings, connect, health, session
from integrations.imap.idle import FolderWatcher
from integrations.imap.poll import Fetched, PollResult, poll_configured_mailbox, poll_folder, poll_mailbox

__all__ = [
    "Fetched",
    "FolderWatcher",
    "ImapMailbox",
    "ImapSettings",
    "Location",
    "PollResult",
    "connect",
    "health",
    "move_message",
    "poll_configured_mailbox",
    "poll_folder",
    "poll_mailbox",
    "session",
]
