"""manage.py export_team: the team directory as JSON."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from actions.management.base import CANNOT_START, DONE, ManualCommand
from teams.directory import export_directory


class Command(ManualCommand):
    help = "Print the team directory as JSON, in the format import_team reads (a backup, or a file to edit)."
    exit_codes = {DONE: "written", CANNOT_START: "the output file cannot be written, or bad arguments"}

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", metavar="FILE", help="Write to this file instead of standard output.")

    def handle(self, *args, output: str | None = None, **options) -> None:
        text = json.dumps(export_directory(), indent=2, ensure_ascii=False) + "\n"
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}", returncode=CANNOT_START) from exc
