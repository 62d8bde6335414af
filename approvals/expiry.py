"""Expiring approvals nobody decided in time."""

from __future__ import annotations

import contextlib
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from actions.audit import record_audit
from actions.models import ActionStatus
from actions.transitions import TransitionConflict, transition_action
from approvals.models import Approval, ApprovalStatus


def expire_overdue_approvals(now: datetime | None = None) -> int:
    """Mark pending approvals past their deadline expired, and expire their actions; return how many.

    Each approval is claimed with a compare-and-set on its status, so two
    schedulers running at once never expire one twice.
    """
    now = now or timezone.now()
    expired = 0
    overdue = Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now).select_related(
        "action", "policy"
    )
    for approval in overdue.iterator(chunk_size=200):
        with transaction.atomic():
            claimed = Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
                status=ApprovalStatus.EXPIRED, decided_at=now
            )
            if claimed != 1:
                continue
            record_audit(
                "approval.expired",
                target=approval,
                actor="scheduler",
                details={"expires_at": approval.expires_at.isoformat(), "policy": str(approval.policy or "")},
            )
            action = approval.action
            still_waiting = action.approvals.filter(status=ApprovalStatus.PENDING).exists()
            if action.status == ActionStatus.PENDING_APPROVAL and not still_waiting:
                # Decided or cancelled meanwhile: that outcome stands.
                with contextlib.suppress(TransitionConflict):
                    transition_action(action, ActionStatus.EXPIRED, actor="scheduler", reason="approval timed out")
        expired += 1
    return expired
