"""`manage.py ingest_imap`: poll the configured IMAP mailbox now, once or in a loop, or watch it with IDLE."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.management.base import CommandError

from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand
from actions.management.progress import Progress
from integrations.errors import IntegrationError
from integrations.imap import FolderWatcher, ImapSettings, PollResult, poll_mailbox


class Command(ManualCommand):
    help = (
        "Read new mail from the configured IMAP mailbox (IMAP_HOST, IMAP_USER, IMAP_FOLDERS...) and store each "
        "message once, as the scheduled job does. Folders are opened read-only: mail is never deleted, moved "
        "or marked read. Polls once unless --loop or --idle is given."
    )
    exit_codes = {
        DONE: "all stored",
        FAILED: "some messages or folders failed (listed, the messages stay in the mailbox)",
        CANNOT_START: "cannot connect or log in, or IMAP is not configured",
    }
    shows_progress = True

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--folder",
            dest="folders",
            action="append",
            metavar="FOLDER",
            help="Poll this folder instead of IMAP_FOLDERS; give it again for more folders.",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="Poll once and exit (the default).")
        mode.add_argument("--loop", action="store_true", help="Keep polling until interrupted (Ctrl-C).")
        mode.add_argument(
            "--idle",
            action="store_true",
            help="Watch each folder until interrupted: fetch new mail as the server announces it (IMAP IDLE), "
            "or every IMAP_POLL_MINUTES where the server has no IDLE.",
        )
        parser.add_argument(
            "--interval",
            type=int,
            metavar="SECONDS",
            help="With --loop, seconds between polls (default: IMAP_POLL_MINUTES).",
        )

    def handle(self, *args, folders: list[str] | None, loop: bool, idle: bool, interval: int | None, **options) -> None:
        cfg = ImapSettings.from_settings()
        if not cfg.configured:
            raise CommandError("IMAP_HOST is not set: there is no mailbox to poll.", returncode=CANNOT_START)
        if interval is not None and interval < 1:
            raise CommandError("--interval must be 1 second or more.", returncode=CANNOT_START)
        if folders:
            cfg = cfg.with_folders(folders)
        if idle:
            self.watch(cfg)
            return
        if not loop:
            self.exit_with(self.poll_once(cfg))
            return
        interval = interval or settings.IMAP_POLL_MINUTES * 60
        try:
            while True:
                try:
                    self.poll_once(cfg)
                except CommandError as exc:
                    # A server that is down now may be back at the next poll.
                    self.stderr.write(str(exc))
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("Stopped.")

    def watch(self, cfg: ImapSettings, stop: threading.Event | None = None) -> None:
        """Watch every folder, each in a thread with its own connection (IDLE watches one folder), until stopped."""
        stop = stop or threading.Event()
        watchers = [FolderWatcher(cfg, folder, stop=stop, on_poll=self.report) for folder in cfg.folders]
        threads = [threading.Thread(target=w.run, name=f"imap-{w.folder}", daemon=True) for w in watchers]
        for thread in threads:
            thread.start()
        try:
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(timeout=1)
        except KeyboardInterrupt:
            stop.set()
            for thread in threads:
                thread.join()
            self.stdout.write("Stopped.")

    def report(self, folder: str, result: PollResult) -> None:
        """One watcher's poll, in a line, when it found something or failed."""
        if result.found or not result.ok:
            style = self.style.SUCCESS if result.ok else self.style.WARNING
            self.stdout.write(style(f"{folder}: {result.summary()}."))
            for error in result.errors:
                self.stderr.write(f"  {folder}: {error}")

    def poll_once(self, cfg: ImapSettings) -> dict[str, PollResult]:
        """Poll every folder once, with a progress bar per folder and a summary line each."""
        bars: dict[str, Progress] = {}

        def found(folder: str, count: int) -> None:
            bars[folder] = self.progress(count, f"{cfg.mailbox}/{folder}")

        def ingested(folder: str, uid: int) -> None:
            bars[folder].advance()

        try:
            results = poll_mailbox(cfg, on_found=found, on_message=ingested)
        except IntegrationError as exc:
            raise CommandError(str(exc), returncode=CANNOT_START) from None
        finally:
            for bar in bars.values():
                bar.finish()
        for folder, result in results.items():
            style = self.style.SUCCESS if result.ok else self.style.WARNING
            self.stdout.write(style(f"{cfg.mailbox}/{folder}: {result.summary().rstrip('.')}."))
            if not result.not_polled:
                for error in result.errors:
                    self.stderr.write(f"  {folder}: {error}")
        return results

    def exit_with(self, results: dict[str, PollResult]) -> None:
        failed = sum(len(result.errors) for result in results.values())
        if failed:
            raise CommandError(
                f"{failed} problem{'s' if failed != 1 else ''} while polling (listed above). "
                "Messages that could not be stored are still in the mailbox, untouched.",
                returncode=FAILED,
            )
