"""Watching a folder (`ingest_imap --idle`): new mail is fetched as it arrives, through the same poll as the schedule.

Where the server advertises IDLE (RFC 2177) the watcher waits in IDLE and
polls the folder when the server says EXISTS or RECENT; it leaves IDLE
after IDLE_SECONDS and enters it again, since servers may drop a client
that stays idle for 30 minutes and a dead connection is noticed no sooner.
Where the server has no IDLE it polls every IMAP_POLL_MINUTES. Each step is
a method, so tests drive the loop one step at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from imapclient import IMAPClient

from integrations.errors import IntegrationError
from integrations.imap.connection import ImapSettings, close, connect, talking
from integrations.imap.poll import PollResult, poll_recording_failure

logger = logging.getLogger(__name__)

# Below the 29 minutes RFC 2177 allows; shorter, so a silently dropped connection is noticed sooner.
IDLE_SECONDS = 10 * 60
# How often the stop flag is looked at while waiting in IDLE.
CHECK_SECONDS = 1.0
# How long to wait before connecting again after the server or the database failed.
RECONNECT_SECONDS = 30
_NEWS = {b"EXISTS", b"RECENT"}


class FolderWatcher:
    """Keeps one folder's new mail flowing into intake until `stop` is set."""

    def __init__(
        self,
        cfg: ImapSettings,
        folder: str,
        *,
        stop: threading.Event | None = None,
        idle_seconds: float = IDLE_SECONDS,
        poll_seconds: float | None = None,
        reconnect_seconds: float = RECONNECT_SECONDS,
        on_poll: Callable[[str, PollResult], None] | None = None,
    ) -> None:
        self.cfg, self.folder = cfg, folder
        self.stop = stop or threading.Event()
        self.idle_seconds = idle_seconds
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.IMAP_POLL_MINUTES * 60
        self.reconnect_seconds = reconnect_seconds
        self.on_poll = on_poll
        self.client: IMAPClient | None = None
        self.idling = threading.Event()  # set while the server holds us in IDLE

    @property
    def uses_idle(self) -> bool:
        return self.client is not None and self.client.has_capability("IDLE")

    def open(self) -> PollResult:
        """Connect and catch up with what arrived while nobody watched."""
        self.client = connect(self.cfg)
        return self.poll()

    def poll(self) -> PollResult:
        """Fetch the folder's new mail, as the scheduled poll does (the folder stays selected, for IDLE)."""
        result = poll_recording_failure(self.client, self.cfg, self.folder)
        if self.on_poll:
            self.on_poll(self.folder, result)
        return result

    def wait(self) -> bool:
        """Wait for news of the folder, the end of the IDLE period or the poll interval; False once told to stop."""
        if not self.uses_idle:
            return not self.stop.wait(self.poll_seconds)
        with talking(self.cfg, f"IDLE in {self.folder!r}"):
            self.client.idle()
            self.idling.set()
            try:
                deadline = time.monotonic() + self.idle_seconds
                while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
                    wait, asked = min(CHECK_SECONDS, left), time.monotonic()
                    responses = self.client.idle_check(timeout=wait)
                    if any(len(response) > 1 and response[1] in _NEWS for response in responses):
                        break
                    if not responses and wait >= 0.1 and time.monotonic() - asked < wait / 2:
                        # Woken with nothing to read: the connection is closed (imapclient swallows the EOF).
                        raise IntegrationError(f"{self.cfg.where} closed the connection during IDLE in {self.folder!r}")
            finally:
                self.idling.clear()
            self.client.idle_done()
        return not self.stop.is_set()

    def step(self) -> PollResult | None:
        """One turn of the loop: wait, then poll; None when told to stop meanwhile."""
        return self.poll() if self.wait() else None

    def close(self) -> None:
        if self.client is not None:
            close(self.client)
            self.client = None

    def run(self) -> None:
        """Watch until `stop` is set, connecting again after the server or the database failed."""
        try:
            while not self.stop.is_set():
                try:
                    if self.client is None:
                        self.open()
                    self.step()
                except (IntegrationError, OperationalError, InterfaceError) as exc:
                    logger.warning(
                        "IMAP %s/%s: %s; trying again in %g s",
                        self.cfg.mailbox,
                        self.folder,
                        exc,
                        self.reconnect_seconds,
                    )
                    self.close()
                    self.stop.wait(self.reconnect_seconds)
        finally:
            self.close()
            connection.close()  # this thread's own database connection
