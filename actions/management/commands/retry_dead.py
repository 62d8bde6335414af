"""manage.py retry_dead: send dead actions back to the queue."""

from __future__ import annotations

from django.core.management.base import CommandError

from actions.executor import retry_action
from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand
from actions.models import Action, ActionStatus, ActionType
from actions.transitions import TransitionError


class Command(ManualCommand):
    help = (
        "Send dead actions (out of attempts, or failed for good) back to the queue with fresh attempts: all of "
        "them, or those given by id or type. Most urgent first; each retry is recorded in the audit trail."
    )
    exit_codes = {
        DONE: "all retried (or none was dead)",
        FAILED: "some could not be retried because they are not dead or changed meanwhile (listed)",
        CANNOT_START: "an id does not exist or bad arguments, nothing was retried",
    }
    shows_progress = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("action_ids", nargs="*", type=int, metavar="ID", help="Only these actions.")
        parser.add_argument(
            "--type",
            dest="action_type",
            choices=ActionType.values,
            metavar="TYPE",
            help=f"Only dead actions of this type: {', '.join(ActionType.values)}.",
        )

    def handle(self, *args, action_ids: list[int], action_type: str | None = None, **options) -> None:
        missing = sorted(set(action_ids) - set(Action.objects.filter(pk__in=action_ids).values_list("pk", flat=True)))
        if missing:
            raise CommandError(f"There is no action {', '.join(map(str, missing))}.", returncode=CANNOT_START)
        wanted = Action.objects.filter(pk__in=action_ids) if action_ids else Action.objects.all()
        if action_type:
            wanted = wanted.filter(type=action_type)
        problems = []
        if action_ids:  # asked for by id, so one that is not dead is worth saying
            not_dead = wanted.exclude(status=ActionStatus.DEAD).values_list("pk", "status")
            problems = [f"Action {pk} is {status}, not dead." for pk, status in not_dead]
        # A list, not a cursor: each retry enqueues on commit, and the ORM broker may close the connection.
        dead = list(wanted.filter(status=ActionStatus.DEAD).order_by("-priority", "created_at"))
        retried = 0
        with self.progress(len(dead), "Retrying") as progress:
            for action in dead:
                try:
                    retry_action(action, actor="command line")
                    retried += 1
                except TransitionError as exc:  # another process moved it meanwhile
                    problems.append(f"Action {action.pk}: {exc}")
                progress.advance()
        self.stdout.write(f"Retried {retried} dead action{'s' if retried != 1 else ''}.")
        for problem in problems:
            self.stderr.write(problem)
        if problems:
            raise CommandError(f"{len(problems)} action(s) could not be retried (listed above).", returncode=FAILED)
