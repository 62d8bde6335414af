"""The sweeper: the periodic job that makes "nothing lost" true whatever the broker does.

The queue is never the only copy of work. Every minute the sweeper takes back
actions whose worker died (lease expired), moves failed actions whose retry
time has come back to the queue, enqueues queued actions that are due but not
on the queue (delay window over, or a task the Redis broker lost), recovers
sends left half-done, sends due reminders, and takes back processing runs
whose worker died. Each step is a function tests
call directly.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from actions.executor import enqueue_due
from actions.models import Action, ActionStatus, ExecutionSwitch
from actions.transitions import TransitionConflict, transition_action
from integrations.outbox import deliver_orphans, recover_stuck_sends

S = ActionStatus


def take_back_expired_leases(now: datetime) -> int:
    """Running actions past their lease go back to the queue: their worker is presumed dead."""
    count = 0
    for action in list(Action.objects.filter(status=S.RUNNING, lease_expires_at__lt=now)[:1000]):
        with contextlib.suppress(TransitionConflict):
            transition_action(
                action,
                S.QUEUED,
                actor="sweeper",
                reason="worker lease expired",
                next_attempt_at=now,
                lease_expires_at=None,
            )
            count += 1
    return count


def requeue_due_retries(now: datetime) -> int:
    """Failed actions whose next attempt is due go back to the queue."""
    count = 0
    for action in list(Action.objects.filter(status=S.FAILED, next_attempt_at__lte=now)[:1000]):
        with contextlib.suppress(TransitionConflict):
            transition_action(action, S.QUEUED, actor="sweeper", reason="retry due")
            count += 1
    return count


def sweep(now: datetime | None = None) -> dict[str, int]:
    """One pass of every step; returns how many of each it handled."""
    from actions.handlers.calendar import send_due_reminders
    from actions.pipeline import recover_runs

    now = now or timezone.now()
    counts = {"leases_expired": take_back_expired_leases(now)}
    counts.update(recover_stuck_sends(settings.ACTION_LEASE_SECONDS))
    # Intake and analysis go on while execution is paused.
    counts.update(
        recover_runs(
            now, lease_seconds=settings.ACTION_LEASE_SECONDS, requeue_after_seconds=settings.REQUEUE_AFTER_SECONDS
        )
    )
    if ExecutionSwitch.is_paused():
        return counts
    counts["retries_due"] = requeue_due_retries(now)
    with transaction.atomic():
        counts["enqueued"] = enqueue_due(
            now, only_unsent_before=now - timedelta(seconds=settings.REQUEUE_AFTER_SECONDS)
        )
    counts["reminders_sent"] = send_due_reminders(now)
    counts["orphans_sent"] = deliver_orphans(now)
    return counts
