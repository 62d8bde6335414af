"""manage.py expire_approvals: settle, at once, the approvals whose deadline has passed."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.utils import timezone

from actions.management.base import DONE, FAILED, ManualCommand
from approvals.expiry import overdue, settle


class Command(ManualCommand):
    help = (
        "Settle the pending approvals whose deadline has passed, as each policy says: escalate to the next "
        "role up, or expire the approval and its action. The worker also does this every 5 minutes; run it by "
        "hand to catch up at once."
    )
    exit_codes = {
        DONE: "all overdue approvals settled (or none was overdue)",
        FAILED: "some could not be settled (listed, they stay pending for the next run)",
    }
    shows_progress = True

    def handle(self, *args, **options) -> None:
        now = timezone.now()
        approvals = overdue(now)
        with self.progress(len(approvals), "Expiring") as progress:
            settled = settle(approvals, now, on_each=progress.advance)
        self.stdout.write(f"Expired {settled.count} approval{'s' if settled.count != 1 else ''}.")
        for problem in settled.problems:
            self.stderr.write(problem)
        if settled.problems:
            raise CommandError(
                f"{len(settled.problems)} approval(s) could not be settled (listed above).", returncode=FAILED
            )
