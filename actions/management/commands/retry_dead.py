from __future__ import annotations

from django.core.management.base import BaseCommand

from actions.executor import retry_action
from actions.models import Action, ActionStatus
from actions.transitions import TransitionError


class Command(BaseCommand):
    help = "Send dead actions back to the queue with fresh attempts: all of them, or those given by id or type."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action_ids", nargs="*", type=int, help="Only these actions.")
        parser.add_argument("--type", dest="action_type", help="Only actions of this type.")

    def handle(self, *args, action_ids: list[int], action_type: str | None = None, **options) -> None:
        dead = Action.objects.filter(status=ActionStatus.DEAD).order_by("-priority", "created_at")
        if action_ids:
            dead = dead.filter(pk__in=action_ids)
        if action_type:
            dead = dead.filter(type=action_type)
        retried = 0
        for action in dead:
            try:
                retry_action(action, actor="command line")
                retried += 1
            except TransitionError as exc:
                self.stderr.write(str(exc))
        self.stdout.write(f"Retried {retried} dead action{'s' if retried != 1 else ''}.")
