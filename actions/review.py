"""The human review queue: messages the analysis could not decide, and what a person does with their proposals.

A reviewer edits a proposal's parameters, accepts it (the policies still
decide whether it also needs an approver), or discards it, and then marks
the message reviewed. Every step is audited.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from actions.audit import record_audit
from actions.executor import cancel_action
from actions.models import Action, ActionStatus, Email, EmailStatus
from actions.proposals import InvalidProposal, check_params


def _require_proposed(action: Action) -> None:
    if action.status != ActionStatus.PROPOSED:
        raise InvalidProposal("status", f"action {action.pk} is {action.get_status_display().lower()}, not proposed")


def edit_proposal(action: Action, params: dict[str, Any], *, acting_user) -> Action:
    """Replace a proposal's parameters, checked against its type's schema."""
    _require_proposed(action)
    if not isinstance(params, dict):
        raise InvalidProposal("params", "must be an object of named values.")
    check_params(action.type, params)
    if params == action.params:
        return action
    with transaction.atomic():
        before = action.params
        Action.objects.filter(pk=action.pk, status=ActionStatus.PROPOSED).update(params=params)
        action.params = params
        record_audit("action.edited", target=action, acting_user=acting_user, details={"from": before, "to": params})
    return action


def accept_proposal(action: Action, *, acting_user):
    """A person accepts the proposal: it is routed with its confidence set aside. Returns the route."""
    from approvals.routing import route_action

    _require_proposed(action)
    with transaction.atomic():
        record_audit("action.accepted", target=action, acting_user=acting_user, details={"type": action.type})
        return route_action(action, acting_user=acting_user, actor="", reviewed=True)


def discard_proposal(action: Action, *, acting_user, reason: str = "") -> Action:
    """A person discards the proposal: it is cancelled, with the reason in the trail."""
    _require_proposed(action)
    return cancel_action(action, acting_user=acting_user, reason=reason or "discarded in review")


def finish_review(email: Email, *, acting_user, note: str = "") -> Email:
    """Take the message out of the review queue."""
    with transaction.atomic():
        Email.objects.filter(pk=email.pk).update(status=EmailStatus.PROCESSED, status_reason=note)
        email.status, email.status_reason = EmailStatus.PROCESSED, note
        open_proposals = list(email.actions.filter(status=ActionStatus.PROPOSED).values_list("pk", flat=True))
        record_audit(
            "email.reviewed",
            target=email,
            acting_user=acting_user,
            details={"note": note, "left_as_suggestions": open_proposals},
        )
    return email
