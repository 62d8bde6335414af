"""manage.py import_team FILE: create or update team members from a directory file."""

from __future__ import annotations

import json
import sys

from django.core.management.base import CommandError

from actions.management.base import CANNOT_START, DONE, ManualCommand
from teams.directory import DirectoryError, import_directory


class Command(ManualCommand):
    help = (
        "Create or update team members from a directory JSON file (format in README, 'Team directory'; "
        "export_team writes it). Members are matched by email. Every entry is checked first; on any error "
        "nothing is imported and each problem is listed."
    )
    exit_codes = {
        DONE: "imported",
        CANNOT_START: "the file cannot be read, is not JSON, or has errors (listed), nothing was imported",
    }

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", metavar="FILE", help="Path to the directory JSON file, or - for standard input.")

    def handle(self, *args, file: str, **options) -> None:
        try:
            if file == "-":
                data = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    data = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}", returncode=CANNOT_START) from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}", returncode=CANNOT_START) from exc
        try:
            members = import_directory(data)
        except DirectoryError as exc:
            raise CommandError("Nothing was imported:\n  " + "\n  ".join(exc.errors), returncode=CANNOT_START) from exc
        self.stdout.write(self.style.SUCCESS(f"Imported {len(members)} team members."))
