"""manage.py import_mail PATH...: store .eml files, folders of them and mbox archives as inbound mail."""

from __future__ import annotations

import mailbox
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from actions.intake.store import ingest_message
from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand
from actions.models import EmailSource, ProcessingRun
from actions.pipeline import process_runs


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def _messages(path: Path) -> Iterator[tuple[str, bytes | None, str]]:
    """(where, raw bytes or None, why unreadable) for each message under `path`."""
    if path.is_dir():
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            yield from _messages(child)
        return
    try:
        if _is_mbox(path):
            box = mailbox.mbox(path, create=False)
            for index, key in enumerate(box.iterkeys(), start=1):
                yield f"{path} #{index}", box.get_bytes(key), ""
            return
        yield str(path), path.read_bytes(), ""
    except OSError as exc:
        yield str(path), None, exc.strerror or str(exc)


def _count(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        files = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")] if path.is_dir() else [path]
        for file in files:
            try:
                total += len(mailbox.mbox(file, create=False)) if _is_mbox(file) else 1
            except OSError:
                total += 1
    return total


class Command(ManualCommand):
    help = (
        "Import inbound mail from .eml files, folders of them (read recursively) and mbox archives. "
        "Each message is stored once per mailbox and Message-ID, so importing again adds only what is new; "
        "a message that is not mail is kept and quarantined with its reason (that is not a failure)."
    )
    exit_codes = {
        DONE: "all read (stored, already stored or quarantined)",
        FAILED: "some paths could not be read, or with --process some runs failed",
        CANNOT_START: "a path does not exist or bad arguments, nothing was imported",
    }
    shows_progress = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help=".eml files, folders, or mbox files.")
        parser.add_argument(
            "--mailbox", default=None, help="The mailbox the mail belongs to (default: DEFAULT_MAILBOX)."
        )
        parser.add_argument(
            "--process",
            action="store_true",
            help="Analyse and route the imported mail now, in this process (otherwise a worker or "
            "`process_pending` does it).",
        )

    def handle(self, *args, paths: list[Path], mailbox: str | None, process: bool, **options) -> None:
        missing = [str(path) for path in paths if not path.exists()]
        if missing:
            raise CommandError(f"No such file or folder: {', '.join(missing)}", returncode=CANNOT_START)
        mailbox_name = mailbox or settings.DEFAULT_MAILBOX
        counts: Counter[str] = Counter()
        new_runs: list[int] = []
        with self.progress(_count(paths), "Importing") as progress:
            for path in paths:
                for where, raw, problem in _messages(path):
                    progress.advance()
                    if raw is None:
                        counts["unreadable"] += 1
                        self.stderr.write(f"Cannot read {where}: {problem}")
                        continue
                    result = ingest_message(
                        raw, mailbox=mailbox_name, source=EmailSource.IMPORT, process=False if process else None
                    )
                    if not result.created:
                        counts["already stored"] += 1
                    elif result.quarantined:
                        counts["quarantined"] += 1
                        self.stderr.write(f"Quarantined {where}: {result.email.status_reason}")
                    else:
                        counts["stored"] += 1
                        new_runs.append(result.run.pk)
        self.stdout.write(
            ", ".join(f"{counts[what]} {what}" for what in ("stored", "already stored", "quarantined", "unreadable"))
            + f" into {mailbox_name}."
        )
        failures = [f"{counts['unreadable']} path(s) could not be read"] if counts["unreadable"] else []
        if process and new_runs:
            outcome = process_runs(ProcessingRun.objects.filter(pk__in=new_runs).order_by("pk"))
            self.stdout.write(f"Processed: {outcome['succeeded']} succeeded, {outcome['failed']} failed.")
            if outcome["failed"]:
                failures.append(f"{outcome['failed']} run(s) failed (their emails wait in the review queue)")
        if failures:
            raise CommandError("; ".join(failures) + ".", returncode=FAILED)
