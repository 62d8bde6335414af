"""manage.py pause_execution: the kill switch, from the command line."""

from __future__ import annotations

from actions.executor import pause_execution
from actions.management.base import DONE, ManualCommand
from actions.models import ExecutionSwitch


class Command(ManualCommand):
    help = (
        "Kill switch: stop all action execution at once. Queued actions stay queued and nothing is lost; "
        "intake and analysis go on. resume_execution starts it again. Recorded in the audit trail."
    )
    exit_codes = {DONE: "execution is paused (also when it already was)"}

    def add_arguments(self, parser) -> None:
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")

    def handle(self, *args, reason: str = "", **options) -> None:
        already = ExecutionSwitch.is_paused()
        pause_execution(actor="command line", reason=reason)
        self.stdout.write(self.style.WARNING("Execution was already paused." if already else "Execution paused."))
