from __future__ import annotations

from django.core.management.base import BaseCommand

from actions.executor import pause_execution


class Command(BaseCommand):
    help = (
        "Kill switch: stop all action execution at once. Queued actions stay queued and nothing is lost; "
        "intake and analysis go on. resume_execution starts it again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, reason: str = "", **options) -> None:
        pause_execution(actor="command line", reason=reason)
        self.stdout.write(self.style.WARNING("Execution paused."))
