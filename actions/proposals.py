"""Creating actions: the one write path every source (analysis, rules, people, API) goes through."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from actions.audit import record_audit
from actions.handlers import validation_errors
from actions.models import Action, ActionSource, ActionType, Email, Priority, ProcessingRun


class InvalidProposal(ValueError):
    """A proposed action was refused; the message names the field and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _refuse_over_limit(email: Email, action_type: str, acting_user) -> None:
    limit = settings.MAX_ACTIONS_PER_EMAIL
    reason = f"email {email.pk} already has {limit} actions, the most one email may have"
    # Refusals are never silent: the trail says what was refused and why.
    record_audit(
        "action.refused", target=email, acting_user=acting_user, details={"type": action_type, "reason": reason}
    )
    raise InvalidProposal("email", reason)


def _require_json_object(field: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidProposal(field, "must be an object of named values.")
    try:
        # What the JSON column will store; NaN is refused because PostgreSQL's jsonb refuses it.
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidProposal(field, f"must hold only JSON values ({exc}).") from exc
    if _has_nul(value):
        # PostgreSQL's jsonb cannot store one.
        raise InvalidProposal(field, "must not contain NUL characters.")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def check_params(action_type: ActionType | str, params: dict[str, Any]) -> None:
    """Refuse parameters the type's schema refuses, naming the first field and listing every problem."""
    problems = validation_errors(str(action_type), params)
    if problems:
        field, _ = problems[0]
        details = "; ".join(f"{name}: {why}" for name, why in problems)
        raise InvalidProposal(f"params.{field}", f"invalid parameters for {action_type} ({details})")


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
    if confidence is not None:
        # The analysis is untrusted: "0.9" or true must not reach the comparison or the column.
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
            raise InvalidProposal("confidence", f"{confidence!r} is not a number.")
        if not 0 <= confidence <= 1:
            raise InvalidProposal("confidence", f"{confidence!r} is outside 0 to 1.")
    _require_json_object("params", params)
    _require_json_object("context", context)
    key_length = Action._meta.get_field("idempotency_key").max_length
    if len(idempotency_key or "") > key_length:
        raise InvalidProposal("idempotency_key", f"is longer than {key_length} characters.")

    check_params(type, params or {})

    key = idempotency_key or uuid.uuid4().hex
    if (
        email is not None
        and not Action.objects.filter(idempotency_key=key).exists()
        and Action.objects.filter(email=email).count() >= settings.MAX_ACTIONS_PER_EMAIL
    ):
        _refuse_over_limit(email, str(type), acting_user)
    with transaction.atomic():
        existing = Action.objects.filter(idempotency_key=key).first()
        if existing is not None:
            return existing
        try:
            # In a savepoint: a concurrent proposal with the same key may commit between the
            # look-up and the insert (PostgreSQL), and then its action is the answer.
            with transaction.atomic():
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
        except IntegrityError:
            existing = Action.objects.filter(idempotency_key=key).first()
            if existing is None:
                raise
            return existing
        record_audit(
            "action.proposed",
            target=action,
            acting_user=acting_user,
            actor="" if acting_user else str(source),
            details={"type": str(type), "source": str(source), "params": action.params, "confidence": confidence},
        )
    return action
