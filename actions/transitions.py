"""The action state machine: the one table of allowed moves and the one function that makes them."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from actions.audit import record_audit
from actions.models import Action, ActionStatus

S = ActionStatus

# Every move an action may make. Anything not listed here is refused.
TRANSITIONS: dict[ActionStatus, frozenset[ActionStatus]] = {
    # A proposal waits for a person, is approved or queued by policy, or is dismissed.
    S.PROPOSED: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.QUEUED, S.REJECTED, S.CANCELLED}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.EXPIRED, S.CANCELLED}),
    S.APPROVED: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.RUNNING, S.CANCELLED}),
    # running -> queued: the sweeper takes back an action whose worker lease ran out.
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.DEAD, S.QUEUED}),
    S.FAILED: frozenset({S.QUEUED, S.DEAD, S.CANCELLED}),
    # dead -> queued: a person retries it from the admin or with retry_dead.
    S.DEAD: frozenset({S.QUEUED, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.UNDONE}),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.UNDONE: frozenset(),
}

# Columns a transition may set along with the status.
_FIELDS_SET_ON_TRANSITION = frozenset(
    {
        "attempts",
        "next_attempt_at",
        "lease_expires_at",
        "started_at",
        "result",
        "last_error",
        "undo_data",
        "scheduled_for",
        "assignee_id",
    }
)


class TransitionError(Exception):
    """An action could not be moved to the wanted status."""

    def __init__(self, message: str, *, action_id: int, current: str, wanted: str) -> None:
        super().__init__(message)
        self.action_id = action_id
        self.current = current
        self.wanted = wanted


class IllegalTransition(TransitionError):
    """The table does not allow the move from the action's status to the wanted one."""


class TransitionConflict(TransitionError):
    """Someone else changed the action's status first (the compare-and-set found 0 rows)."""


def can_transition(current: str, wanted: str) -> bool:
    return ActionStatus(wanted) in TRANSITIONS[ActionStatus(current)]


def transition_action(
    action: Action,
    to: ActionStatus | str,
    *,
    acting_user=None,
    actor: str = "",
    reason: str = "",
    details: dict[str, Any] | None = None,
    **changes: Any,
) -> Action:
    """Move `action` from the status it holds to `to`, and audit it, in one transaction.

    The UPDATE only matches while the row still has the status `action` holds
    in memory, so of two concurrent moves exactly one wins; the loser gets
    TransitionConflict and the row is left as the winner wrote it. `changes`
    sets other execution columns (attempts, result, last_error...) in the
    same UPDATE.
    """
    current = ActionStatus(action.status)
    wanted = ActionStatus(to)
    if wanted not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"Action {action.pk} cannot go from '{current}' to '{wanted}'.",
            action_id=action.pk,
            current=current,
            wanted=wanted,
        )
    unknown = set(changes) - _FIELDS_SET_ON_TRANSITION
    if unknown:
        raise TypeError(f"transition_action() cannot set {', '.join(sorted(unknown))}.")

    now = timezone.now()
    with transaction.atomic():
        updated = Action.objects.filter(pk=action.pk, status=current).update(
            status=wanted, status_changed_at=now, updated_at=now, **changes
        )
        if updated != 1:
            actual = Action.objects.filter(pk=action.pk).values_list("status", flat=True).first()
            raise TransitionConflict(
                f"Action {action.pk} is no longer '{current}' (it is now '{actual or 'deleted'}'); "
                f"it was not moved to '{wanted}'.",
                action_id=action.pk,
                current=actual or "",
                wanted=wanted,
            )
        record_audit(
            f"action.{wanted}",
            target=action,
            acting_user=acting_user,
            actor=actor,
            # The caller's details come first, so they can never rewrite what the move was.
            details={**(details or {}), "from": str(current), "to": str(wanted), "reason": reason},
        )
    action.status = wanted
    action.status_changed_at = action.updated_at = now
    for field, value in changes.items():
        setattr(action, field, value)
    return action
