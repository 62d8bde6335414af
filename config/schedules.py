"""Periodic jobs for the django-q2 scheduler, registered idempotently after every migrate."""

from __future__ import annotations

from django.conf import settings
from django_q.models import Schedule

# name -> (dotted function, every N minutes). Names are stable: registration
# updates the row with that name, so deploying twice never duplicates a job.
SCHEDULES: dict[str, tuple[str, int]] = {
    "expire_approvals": ("approvals.expiry.expire_overdue_approvals", 5),
    "sweep_actions": ("actions.sweeper.sweep", 1),
}

# Jobs that only run while their integration is configured.
IMAP_SCHEDULE = "ingest_imap"
OPTIONAL_SCHEDULES = {IMAP_SCHEDULE}


def wanted_schedules() -> dict[str, tuple[str, int]]:
    """Every job this configuration runs: the fixed ones, and IMAP polling while IMAP_HOST is set."""
    schedules = dict(SCHEDULES)
    if settings.IMAP_HOST:
        schedules[IMAP_SCHEDULE] = ("integrations.imap.poll_configured_mailbox", settings.IMAP_POLL_MINUTES)
    return schedules


def register_schedules(**kwargs) -> None:
    wanted = wanted_schedules()
    for name, (func, minutes) in wanted.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": func, "schedule_type": Schedule.MINUTES, "minutes": minutes, "repeats": -1},
        )
    # Switching an integration off removes its job, so it stops running rather than failing every minute.
    Schedule.objects.filter(name__in=OPTIONAL_SCHEDULES - wanted.keys()).delete()
