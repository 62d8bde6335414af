from __future__ import annotations

from django.core.management.base import BaseCommand

from actions.executor import resume_execution


class Command(BaseCommand):
    help = "Undo the kill switch: let actions run again; queued ones are enqueued, most urgent first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, reason: str = "", **options) -> None:
        count = resume_execution(actor="command line", reason=reason)
        self.stdout.write(self.style.SUCCESS(f"Execution resumed; {count} queued actions enqueued."))
