"""Creating actions: the one write path every source (analysis, rules, people, API) goes through."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from actions.audit import record_audit
from actions.models import Action, ActionSource, ActionType, Email, Priority, ProcessingRun


class InvalidProposal(ValueError):
    """A proposed action was refused; the message names the field and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def propose_action(
    type: ActionType | str,
    *,
    email: Email | None = None,
    params: dict[str, Any] | None = None,
    source: ActionSource | str = ActionSource.PERSON,
    priority: Priority | int = Priority.NORMAL,
    confidence: float | None = None,
    rationale: str = "",
    context: dict[str, Any] | None = None,
    run: ProcessingRun | None = None,
    idempotency_key: str = "",
    acting_user=None,
) -> Action:
    """Store a new action in `proposed` and audit it; refuse bad input before anything is written.

    Proposing again with the same idempotency key returns the action already
    stored instead of making a second one.
    """
    if type not in ActionType.values:
        raise InvalidProposal(
            "type", f"'{type}' is not an action type; expected one of {', '.join(ActionType.values)}."
        )
    if source not in ActionSource.values:
        raise InvalidProposal(
            "source", f"'{source}' is not a source; expected one of {', '.join(ActionSource.values)}."
        )
    if priority not in Priority.values:
        raise InvalidProposal("priority", f"{priority!r} is not a priority; expected one of {Priority.values}.")
    if confidence is not None and not 0 <= confidence <= 1:
        raise InvalidProposal("confidence", f"{confidence!r} is outside 0 to 1.")
    if params is not None and not isinstance(params, dict):
        raise InvalidProposal("params", "must be an object of named parameters.")

    key = idempotency_key or uuid.uuid4().hex
    with transaction.atomic():
        existing = Action.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing
        action = Action.objects.create(
            type=type,
            email=email,
            params=params or {},
            source=source,
            priority=priority,
            confidence=confidence,
            rationale=rationale,
            context=context or {},
            run=run,
            idempotency_key=key,
            created_by=acting_user if acting_user is not None and acting_user.is_authenticated else None,
        )
        record_audit(
            "action.proposed",
            target=action,
            acting_user=acting_user,
            actor="" if acting_user else str(source),
            details={"type": str(type), "source": str(source), "params": action.params, "confidence": confidence},
        )
    return action
