"""Settling approvals nobody decided in time: the worker's schedule and `manage.py expire_approvals` share it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from approvals.decisions import deadline_passed, time_out
from approvals.models import Approval

logger = logging.getLogger(__name__)

# The schedule settles at most this many per run; the next run takes the rest.
SCHEDULED_BATCH = 1000


@dataclass
class Settled:
    """What one pass settled, and the approvals it could not settle (they stay pending)."""

    count: int = 0
    problems: list[str] = field(default_factory=list)


def overdue(now: datetime, limit: int | None = None) -> list[Approval]:
    """The pending approvals past their deadline, oldest deadline first.

    A list, not a streaming cursor: settling enqueues mail, and django-q2's
    ORM broker may close the connection a cursor would still be reading.
    """
    approvals = deadline_passed(now).select_related("policy").order_by("expires_at")
    return list(approvals[:limit] if limit else approvals)


def settle(approvals: list[Approval], now: datetime, *, on_each: Callable[[], None] | None = None) -> Settled:
    """Escalate or reject each approval as its policy says; one that fails is named and does not stop the rest.

    Each approval is claimed with a compare-and-set on its status (in
    time_out), so two schedulers running at once never settle one twice.
    """
    settled = Settled()
    for approval in approvals:
        try:
            settled.count += time_out(approval, now) != "already settled"
        except Exception as exc:  # One broken approval must not keep the others waiting.
            logger.exception("Approval %s could not be settled", approval.pk)
            settled.problems.append(f"Approval {approval.pk}: {exc}")
        if on_each is not None:
            on_each()
    return settled


def expire_overdue_approvals(now: datetime | None = None) -> int:
    """The worker's schedule: settle the overdue approvals (a batch of them); return how many were settled."""
    now = now or timezone.now()
    return settle(overdue(now, SCHEDULED_BATCH), now).count
