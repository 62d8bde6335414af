from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from teams.directory import export_directory


class Command(BaseCommand):
    help = "Print the team directory as JSON, in the format import_team reads."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", help="Write to this file instead of standard output.")

    def handle(self, *args, output: str | None = None, **options) -> None:
        text = json.dumps(export_directory(), indent=2, ensure_ascii=False) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text, ending="")
