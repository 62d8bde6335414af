"""What a task system answers, whichever it is: the Task handlers see, the calls, and the one "not found" error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from integrations.base import Backend
from integrations.errors import IntegrationError


class TaskNotFound(IntegrationError):
    """The task does not exist (any more). Trying again will not make it appear."""

    def __init__(self, task_id: int, message: str = "") -> None:
        super().__init__(message or f"Task {task_id} does not exist.", permanent=True)
        self.task_id = task_id


@dataclass(frozen=True)
class Task:
    """What handlers need to know of a task, whichever system keeps it."""

    id: int
    title: str
    status: str  # TaskStatus: open, done or cancelled
    assignee_id: int | None
    email_id: int | None
    completed_at: datetime | None
    # Where it lives outside Mailroom: "local" with no id, or "jira"/"asana" with the issue key or task gid.
    backend: str = "local"
    external_id: str = ""
    external_url: str = ""


class TaskBackend(Backend):
    """The calls a task system answers. Creating is idempotent: one task per action."""

    capability: ClassVar[str] = "tasks"

    def get(self, task_id: int, *, for_update: bool = False) -> Task:
        raise NotImplementedError

    def open_task_for_email(self, email_id: int) -> Task | None:
        """The email's most recent open task, if it has one."""
        raise NotImplementedError

    def create(
        self,
        *,
        action_id: int,
        title: str,
        description: str = "",
        priority: int,
        due_at: datetime | None = None,
        assignee_id: int | None = None,
        email_id: int | None = None,
    ) -> int:
        """Create the action's task, or return the id of the one it already created."""
        raise NotImplementedError

    def reassign(self, task_id: int, assignee_id: int | None) -> int:
        raise NotImplementedError

    def complete(self, task_id: int) -> int:
        raise NotImplementedError

    def reopen(self, task_id: int) -> int:
        raise NotImplementedError

    def cancel(self, task_id: int) -> int:
        raise NotImplementedError
