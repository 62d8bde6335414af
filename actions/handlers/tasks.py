"""Handlers for work on tasks: create_task, delegate_task and mark_complete.

Tasks live in the task backend (integrations.tasks: local, Jira or Asana,
always with a LocalTask row whose id handlers use); who gets one is decided
by teams.assignment (README, "How assignment decides"). Each change is made
once per action (actions.handlers.changes), so a redelivered or retried
action reports the task it already made or moved instead of doing it again.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

from django.utils import timezone
from django.utils.text import Truncator
from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from actions.handlers import register
from actions.handlers.base import ActionFailed, Address, Handler, Outcome, Params, UndoRefused, email_of
from actions.handlers.changes import change_once, deliver_notice, iso, moment, recorded, store_notice
from actions.models import Action, ActionType, Email, EmailStatus
from integrations.models import TaskStatus
from integrations.tasks import Task, TaskBackend, TaskNotFound, task_backend
from teams.assignment import choose_assignee, need_for_action
from teams.models import TeamMember
from teams.notices import build_delegation_notice, one_line

TITLE_CHARS = 300


# --- Parameter types ------------------------------------------------------------


def _skills_by_level(value: Any) -> Any:
    # Need.from_params reads both shapes; a list means any level will do.
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return {name: 1 for name in value}
    if value is None or isinstance(value, dict):
        return value
    raise ValueError("must be a list of skill names or an object of skill name to level 1-5")


# A team member's address: a user's email, at most 254 characters.
MemberAddress = Annotated[Address, Field(max_length=254)]
TaskId = Annotated[int, Field(strict=True, gt=0)]
Skills = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[int, Field(strict=True, ge=1, le=5)]],
    BeforeValidator(_skills_by_level),
]


# --- Shared steps ---------------------------------------------------------------


def member_at(address: str) -> TeamMember:
    """The active team member with this address; ActionFailed (permanent) naming it when there is none."""
    member = TeamMember.objects.select_related("user").filter(user__email__iexact=address).order_by("pk").first()
    if member is None:
        raise ActionFailed(f"No team member has the address {address}.")
    if not member.active:
        raise ActionFailed(f"{member} ({address}) is not an active team member.")
    return member


def _member(member_id: int | None) -> TeamMember | None:
    if member_id is None:
        return None
    return TeamMember.objects.select_related("user").filter(pk=member_id).first()


def _requested_by(action: Action) -> str:
    user = action.created_by
    return (user.get_full_name() or user.get_username()) if user is not None else ""


def _where(task: Task) -> dict[str, str]:
    """Where the task lives outside Mailroom, for the action's result; nothing for a local task."""
    if not task.external_id:
        return {}
    return {"backend": task.backend, "external_id": task.external_id, "external_url": task.external_url}


def _task_for_undo(backend: TaskBackend, task_id: int) -> Task:
    try:
        return backend.get(task_id, for_update=True)
    except TaskNotFound as exc:
        raise UndoRefused(str(exc)) from None


# --- create_task ----------------------------------------------------------------


class CreateTaskParams(Params):
    title: str = Field(min_length=1, max_length=TITLE_CHARS)
    description: str = Field("", max_length=10_000)
    skills: Skills | None = None
    due_at: AwareDatetime | None = None
    assignee: MemberAddress | None = None


@register
class CreateTask(Handler):
    """A task in the task backend, linked to the action and its email, for the member named or best suited."""

    type = ActionType.CREATE_TASK
    params = CreateTaskParams
    capability = "tasks"
    undoable = True

    def execute(self, action: Action, params: CreateTaskParams) -> Outcome:
        backend = task_backend()

        def create() -> dict[str, Any]:
            if params.assignee:
                member = member_at(params.assignee)
                how, why = "named", f"{member} was named in the action."
            else:
                choice = choose_assignee(need_for_action(action))
                member, how, why = choice.member, choice.outcome, choice.explanation
            task_id = backend.create(
                action_id=action.pk,
                title=params.title,
                description=params.description,
                priority=action.priority,
                due_at=params.due_at,
                assignee_id=member.pk if member else None,
                email_id=action.email_id,
            )
            return {
                "task_id": task_id,
                "title": params.title,
                "assignee_id": member.pk if member else None,
                "assignee": str(member) if member else "",
                "assignment": how,
                "explanation": why,
                **_where(backend.get(task_id)),
            }

        created = change_once(action, "task.created", create)
        return Outcome(result=created, undo_data={"task_id": created["task_id"]})

    def undo(self, action: Action, params: CreateTaskParams) -> dict[str, Any]:
        backend = task_backend()
        task = _task_for_undo(backend, recorded(action, "task_id"))
        if task.status == TaskStatus.DONE:
            raise UndoRefused("The task was already completed.")
        if task.status == TaskStatus.OPEN:
            backend.cancel(task.id)
        return {"task_id": task.id, "status": TaskStatus.CANCELLED, "was": task.status}


# --- delegate_task --------------------------------------------------------------


class DelegateTaskParams(Params):
    skills: Skills | None = None
    note: str = Field("", max_length=2000)
    to: MemberAddress | None = None
    task_id: TaskId | None = None


@register
class DelegateTask(Handler):
    """Hand a task to the member named or best suited, and tell them.

    The task is the one named by task_id, else the email's open task, else a
    new one made for the email.
    """

    type = ActionType.DELEGATE_TASK
    params = DelegateTaskParams
    capability = "tasks"
    also_uses = ("mail",)
    undoable = True

    def execute(self, action: Action, params: DelegateTaskParams) -> Outcome:
        backend = task_backend()
        if params.task_id is None:
            email_of(action)  # Refuse before anything changes.

        def delegate() -> dict[str, Any]:
            task, created = self._task(action, params, backend)
            member, how, why = self._delegate(action, params, task)
            previous = _member(task.assignee_id)
            backend.reassign(task.id, member.pk)
            try:
                notice = build_delegation_notice(
                    action, member, delegated_by=_requested_by(action), note=params.note, previous=previous
                )
            except ValueError as exc:
                raise ActionFailed(str(exc)) from None
            store_notice(action, "delegation", notice)
            return {
                "task_id": task.id,
                "title": task.title,
                "created_task": created,
                "assignee_id": member.pk,
                "assignee": str(member),
                "previous_assignee_id": task.assignee_id,
                "assignment": how,
                "explanation": why,
                **_where(task),
            }

        delegated = change_once(action, "task.delegated", delegate)
        notice = deliver_notice(action, "delegation")
        return Outcome(
            result={**delegated, "notice": notice},
            undo_data={
                "task_id": delegated["task_id"],
                "assignee_id": delegated["assignee_id"],
                "previous_assignee_id": delegated["previous_assignee_id"],
            },
        )

    def _task(self, action: Action, params: DelegateTaskParams, backend: TaskBackend) -> tuple[Task, bool]:
        """What is delegated, and whether it was created for the purpose."""
        if params.task_id is not None:
            task = backend.get(params.task_id, for_update=True)
            if task.status != TaskStatus.OPEN:
                raise ActionFailed(f"Task {task.id} is {task.status}; only an open task can be delegated.")
            return task, False
        email = email_of(action)
        task = backend.open_task_for_email(email.pk)
        if task is not None:
            return task, False
        subject = one_line(email.subject) or "(no subject)"
        task_id = backend.create(
            action_id=action.pk,
            title=Truncator(f"Handle: {subject}").chars(TITLE_CHARS),
            priority=action.priority,
            email_id=email.pk,
        )
        return backend.get(task_id), True

    def _delegate(self, action: Action, params: DelegateTaskParams, task: Task) -> tuple[TeamMember, str, str]:
        """Who takes the task, how they were chosen, and why."""
        if params.to:
            member = member_at(params.to)
            if member.pk == task.assignee_id:
                raise ActionFailed(f"Task {task.id} is already assigned to {member}.")
            return member, "named", f"{member} was named in the action."
        need = need_for_action(action)
        if task.assignee_id is not None:
            # A delegation never goes back to the member who has the task now.
            need = dataclasses.replace(need, exclude=need.exclude | {task.assignee_id})
        choice = choose_assignee(need)
        if choice.member is None:
            raise ActionFailed(choice.explanation)
        return choice.member, choice.outcome, choice.explanation

    def undo(self, action: Action, params: DelegateTaskParams) -> dict[str, Any]:
        backend = task_backend()
        task = _task_for_undo(backend, recorded(action, "task_id"))
        delegate = _member(recorded(action, "assignee_id"))
        if delegate is None or task.assignee_id != delegate.pk:
            now = _member(task.assignee_id)
            raise UndoRefused(
                f"Task {task.id} was reassigned since (it is now with {now or 'nobody'}); "
                "undoing would take it from them."
            )
        # The previous assignee may have left the team since: then the task is unassigned.
        previous = _member(action.undo_data.get("previous_assignee_id"))
        backend.reassign(task.id, previous.pk if previous else None)
        try:
            message = build_delegation_notice(action, delegate, previous=previous, undo=True)
        except ValueError as exc:
            raise UndoRefused(str(exc)) from None
        store_notice(action, "delegation-undo", message)
        return {
            "task_id": task.id,
            "assignee_id": previous.pk if previous else None,
            "taken_from_id": delegate.pk,
            "notice": deliver_notice(action, "delegation-undo"),
        }


# --- mark_complete --------------------------------------------------------------


class MarkCompleteParams(Params):
    target: Literal["email", "task"] = "email"
    task_id: TaskId | None = None

    @model_validator(mode="after")
    def _task_id_goes_with_task(self) -> MarkCompleteParams:
        if self.target == "task" and self.task_id is None:
            raise ValueError("task_id is required when target is 'task'")
        if self.target == "email" and self.task_id is not None:
            raise ValueError("task_id is only for target 'task'; the target is the email")
        return self


@register
class MarkComplete(Handler):
    """Mark the email (processed) or a task (done) as done; undo reopens it."""

    type = ActionType.MARK_COMPLETE
    params = MarkCompleteParams
    capability = "local"
    undoable = True

    def uses(self, action: Action) -> tuple[str, ...]:
        # A task is completed in the task backend (Jira, Asana), an email in Mailroom alone. Asked
        # before the parameters are checked, so read with care: their check refuses a bad row later.
        target = action.params.get("target") if isinstance(action.params, dict) else None
        return ("tasks",) if target == "task" else (self.capability,)

    def execute(self, action: Action, params: MarkCompleteParams) -> Outcome:
        if params.target == "task":
            backend = task_backend()
            done = change_once(action, "task.completed", lambda: self._complete_task(backend, params.task_id))
        else:
            email_of(action)
            done = change_once(action, "email.completed", lambda: self._complete_email(action))
        return Outcome(result=done, undo_data=done)

    def _complete_email(self, action: Action) -> dict[str, Any]:
        email = email_of(action, for_update=True)
        completed_at = email.completed_at or timezone.now()
        Email.objects.filter(pk=email.pk).update(status=EmailStatus.PROCESSED, completed_at=completed_at)
        return {
            "target": "email",
            "email_id": email.pk,
            "completed_at": iso(completed_at),
            "previous_status": email.status,
            "already_done": email.completed_at is not None,
        }

    def _complete_task(self, backend: TaskBackend, task_id: int) -> dict[str, Any]:
        task = backend.get(task_id, for_update=True)
        if task.status == TaskStatus.CANCELLED:
            raise ActionFailed(f"Task {task.id} was cancelled; a cancelled task cannot be marked done.")
        if task.status == TaskStatus.OPEN:
            backend.complete(task.id)
        return {
            "target": "task",
            "task_id": task.id,
            "completed_at": iso(backend.get(task.id).completed_at),
            "previous_status": task.status,
            "already_done": task.status == TaskStatus.DONE,
        }

    def undo(self, action: Action, params: MarkCompleteParams) -> dict[str, Any]:
        data = action.undo_data
        if data.get("already_done"):
            return {"target": data.get("target"), "reopened": False, "why": "it was already done before this action"}
        if recorded(action, "target") == "task":
            return self._reopen_task(action)
        reopened = Email.objects.filter(
            pk=recorded(action, "email_id"), completed_at=moment(recorded(action, "completed_at"))
        ).update(status=recorded(action, "previous_status"), completed_at=None)
        if not reopened:
            raise UndoRefused("The email was reopened or marked done again since; there is nothing to undo.")
        return {"target": "email", "email_id": data["email_id"], "reopened": True, "status": data["previous_status"]}

    def _reopen_task(self, action: Action) -> dict[str, Any]:
        backend = task_backend()
        task = _task_for_undo(backend, recorded(action, "task_id"))
        if task.status != TaskStatus.DONE:
            raise UndoRefused(f"Task {task.id} is {task.status} now, not done; there is nothing to reopen.")
        backend.reopen(task.id)
        return {"target": "task", "task_id": task.id, "reopened": True, "status": TaskStatus.OPEN}
