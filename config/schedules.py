"""Periodic jobs for the django-q2 scheduler, registered idempotently after every migrate."""

from __future__ import annotations

from django_q.models import Schedule

# name -> (dotted function, every N minutes). Names are stable: registration
# updates the row with that name, so deploying twice never duplicates a job.
SCHEDULES: dict[str, tuple[str, int]] = {
    "expire_approvals": ("approvals.expiry.expire_overdue_approvals", 5),
    "sweep_actions": ("actions.sweeper.sweep", 1),
}


def register_schedules(**kwargs) -> None:
    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
