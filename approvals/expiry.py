"""Settling approvals nobody decided in time."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from approvals.decisions import deadline_passed, time_out


def expire_overdue_approvals(now: datetime | None = None) -> int:
    """Escalate or reject, as each policy says, every pending approval past its deadline; return how many.

    Each approval is claimed with a compare-and-set on its status, so two
    schedulers running at once never settle one twice.
    """
    now = now or timezone.now()
    settled = 0
    # A list, not a streaming cursor: settling enqueues mail, and django-q2's
    # ORM broker may close the connection a cursor would still be reading.
    for approval in list(deadline_passed(now).select_related("policy").order_by("expires_at")[:1000]):
        if time_out(approval, now) != "already settled":
            settled += 1
    return settled
