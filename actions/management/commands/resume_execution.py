"""manage.py resume_execution: lift the kill switch."""

from __future__ import annotations

from actions.executor import resume_execution
from actions.management.base import DONE, ManualCommand


class Command(ManualCommand):
    help = (
        "Undo the kill switch: let actions run again; queued ones that are due are enqueued, most urgent first. "
        "Recorded in the audit trail."
    )
    exit_codes = {DONE: "execution is running (also when it already was)"}

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, reason: str = "", **options) -> None:
        count = resume_execution(actor="command line", reason=reason)
        self.stdout.write(
            self.style.SUCCESS(f"Execution resumed; {count} queued action{'s' if count != 1 else ''} enqueued.")
        )
