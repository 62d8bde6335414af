"""What every action handler is: a parameter schema, an execute step and, where possible, an undo step.

A handler says what an action *means*; it talks to outside systems only
through `integrations` (never an SDK), and never writes the action's status,
attempts or errors: the executor records those (STYLE.md: side effects are
recorded in one place).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict

from actions.models import Action, Email


class Params(BaseModel):
    """Base of every handler's parameter schema: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def is_address(value: str) -> bool:
    """Whether `value` is one valid email address."""
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _valid_address(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"'{value}' is not an email address")
    return value


# An email address parameter, for every handler's schema.
Address = Annotated[str, AfterValidator(_valid_address)]


class ActionFailed(Exception):
    """The handler cannot do the action. Permanent unless said otherwise."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        super().__init__(message)
        self.permanent = permanent


def email_of(action: Action, doing: str = "act on", *, for_update: bool = False) -> Email:
    """The email the action is about; ActionFailed (permanent) when it has none."""
    if action.email_id is None:
        raise ActionFailed(f"{action.get_type_display()} needs an email to {doing}, and action {action.pk} has none.")
    emails = Email.objects.select_for_update() if for_update else Email.objects
    return emails.get(pk=action.email_id)


class UndoRefused(Exception):
    """The action cannot be undone; the message says why (e.g. "already sent")."""


@dataclass
class Outcome:
    """What executing did: a result a person reads, and what undo will need."""

    result: dict[str, Any] = field(default_factory=dict)
    undo_data: dict[str, Any] = field(default_factory=dict)


class Handler:
    """One action type. Subclasses set the class attributes and implement execute (and undo)."""

    type: ClassVar[str]
    params: ClassVar[type[Params]]
    # The integration whose circuit breaker guards this handler: mail, tasks,
    # calendar, files, mailbox, chat or local (Mailroom's own records).
    capability: ClassVar[str] = "local"
    # Other integrations it calls (schedule_meeting mails the invitations): it
    # waits on their circuits too, and their failures are charged to them.
    also_uses: ClassVar[tuple[str, ...]] = ()
    # Sends wait out the delay window and have their recipients checked.
    sends_mail: ClassVar[bool] = False
    undoable: ClassVar[bool] = False

    def parse(self, action: Action) -> Params:
        return self.params.model_validate(action.params)

    def uses(self, action: Action) -> tuple[str, ...]:
        """The integrations this action may call: it waits while the circuit of any of them is open."""
        return (self.capability, *self.also_uses)

    def due_at(self, action: Action, params: Params) -> datetime | None:
        """When the action should run, if its parameters say (e.g. a follow-up); None for as soon as queued."""
        return None

    def recipients(self, action: Action, params: Params) -> list[str]:
        """The addresses outgoing mail will go to, for the guard rails. Empty when it sends none."""
        return []

    def execute(self, action: Action, params: Params) -> Outcome:
        raise NotImplementedError

    def undo(self, action: Action, params: Params) -> dict[str, Any]:
        """Reverse the action; return details for the audit trail. Raise UndoRefused when it cannot be."""
        raise UndoRefused(f"{action.get_type_display()} cannot be undone.")
