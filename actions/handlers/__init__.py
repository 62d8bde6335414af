"""The registry of action handlers: one per action type."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from actions.handlers.base import ActionFailed, Handler, Outcome, Params, UndoRefused
from actions.models import ActionType

_REGISTRY: dict[str, Handler] = {}


def register(handler_class: type[Handler]) -> type[Handler]:
    """Class decorator: make `handler_class` the handler of its action type."""
    if handler_class.type in _REGISTRY:
        raise ValueError(f"A handler for {handler_class.type} is already registered.")
    _REGISTRY[handler_class.type] = handler_class()
    return handler_class


def get_handler(action_type: str) -> Handler:
    _load()
    try:
        return _REGISTRY[action_type]
    except KeyError:
        raise LookupError(f"No handler for action type '{action_type}'.") from None


def all_handlers() -> dict[str, Handler]:
    _load()
    return dict(_REGISTRY)


def validation_errors(action_type: str, params: Any) -> list[tuple[str, str]]:
    """Check parameters against the type's schema; return (field, why) pairs, empty when valid."""
    try:
        get_handler(action_type).params.model_validate(params)
    except ValidationError as exc:
        return field_errors(exc)
    return []


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """A schema's refusal as (field, why) pairs."""
    return [(".".join(str(part) for part in error["loc"]) or "params", error["msg"]) for error in exc.errors()]


def _load() -> None:
    # Importing the modules registers their handlers.
    if len(_REGISTRY) < len(ActionType.values):
        from actions.handlers import calendar, files, mail, mailbox, tasks  # noqa: F401


__all__ = [
    "ActionFailed",
    "Handler",
    "Outcome",
    "Params",
    "UndoRefused",
    "all_handlers",
    "field_errors",
    "get_handler",
    "register",
    "validation_errors",
]
