from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from teams.directory import DirectoryError, import_directory


class Command(BaseCommand):
    help = (
        "Create or update team members from a directory JSON file (format in README, 'Team directory'). "
        "Every entry is checked first; on any error nothing is imported and each problem is listed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="Path to the directory JSON file, or - for standard input.")

    def handle(self, *args, file: str, **options) -> None:
        try:
            if file == "-":
                data = json.load(sys.stdin)
            else:
                with open(file, encoding="utf-8") as handle:
                    data = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise CommandError(f"{file} is not valid JSON: {exc}") from exc
        try:
            members = import_directory(data)
        except DirectoryError as exc:
            raise CommandError("Nothing was imported:\n  " + "\n  ".join(exc.errors)) from exc
        self.stdout.write(self.style.SUCCESS(f"Imported {len(members)} team members."))
