from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from actions.executor import undo_action
from actions.handlers import UndoRefused
from actions.models import Action


class Command(BaseCommand):
    help = (
        "Undo one executed action: cancel its task, send the meeting cancellation, move the email back... "
        "Exits 1 with the reason when it cannot be undone (e.g. the reply was already sent)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("action_id", type=int)

    def handle(self, *args, action_id: int, **options) -> None:
        action = Action.objects.filter(pk=action_id).first()
        if action is None:
            raise CommandError(f"There is no action {action_id}.")
        try:
            details = undo_action(action, actor="command line")
        except UndoRefused as exc:
            raise CommandError(f"Action {action_id} was not undone: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(f"Undid action {action_id} ({action.get_type_display()}). {details or ''}")
        )
