"""manage.py undo_action ID: reverse one executed action."""

from __future__ import annotations

from django.core.management.base import CommandError

from actions.executor import undo_action
from actions.handlers import UndoRefused
from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand
from actions.models import Action


class Command(ManualCommand):
    help = (
        "Undo one executed action: cancel its task, send the meeting cancellation, move the email back... "
        "The action must have succeeded; the undo is recorded in the audit trail."
    )
    exit_codes = {
        DONE: "undone",
        FAILED: "not undone, with the reason (e.g. the reply was already sent, or the service refused)",
        CANNOT_START: "there is no action with that id, or bad arguments",
    }

    def add_arguments(self, parser) -> None:
        parser.add_argument("action_id", type=int, metavar="ID", help="The action's id (as in the admin and the API).")

    def handle(self, *args, action_id: int, **options) -> None:
        action = Action.objects.filter(pk=action_id).first()
        if action is None:
            raise CommandError(f"There is no action {action_id}.", returncode=CANNOT_START)
        try:
            details = undo_action(action, actor="command line")
        except UndoRefused as exc:
            raise CommandError(f"Action {action_id} was not undone: {exc}", returncode=FAILED) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Undid action {action_id} ({action.get_type_display()}). {details or ''}".rstrip())
        )
