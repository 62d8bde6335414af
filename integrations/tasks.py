"""Task backends: where tasks live. The local store (Mailroom's own database) now; Jira and Asana later.

A backend is a handful of calls that take and return task ids; handlers
decide what to create or change, the backend only talks to its system.
Errors are IntegrationError, as from every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from integrations.errors import IntegrationError
from integrations.models import LocalTask, TaskStatus


class TaskNotFound(IntegrationError):
    """The task does not exist (any more). Trying again will not make it appear."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"Task {task_id} does not exist.", permanent=True)
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


class TaskBackend:
    """The calls a task system answers. Creating is idempotent: one task per action."""

    name: str

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


class LocalTaskBackend(TaskBackend):
    """Tasks kept in Mailroom's own database (LocalTask), shown in the admin."""

    name = "local"

    def get(self, task_id: int, *, for_update: bool = False) -> Task:
        tasks = LocalTask.objects.select_for_update() if for_update else LocalTask.objects
        task = tasks.filter(pk=task_id).first()
        if task is None:
            raise TaskNotFound(task_id)
        return _snapshot(task)

    def open_task_for_email(self, email_id: int) -> Task | None:
        tasks = LocalTask.objects.filter(email_id=email_id, status=TaskStatus.OPEN)
        task = tasks.order_by("-created_at", "-pk").first()
        return _snapshot(task) if task else None

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
        task, _ = LocalTask.objects.get_or_create(
            action_id=action_id,
            defaults={
                "title": title,
                "description": description,
                "priority": priority,
                "due_at": due_at,
                "assignee_id": assignee_id,
                "email_id": email_id,
            },
        )
        return task.pk

    def reassign(self, task_id: int, assignee_id: int | None) -> int:
        return self._update(task_id, assignee_id=assignee_id)

    def complete(self, task_id: int) -> int:
        return self._update(task_id, status=TaskStatus.DONE, completed_at=timezone.now())

    def reopen(self, task_id: int) -> int:
        return self._update(task_id, status=TaskStatus.OPEN, completed_at=None)

    def cancel(self, task_id: int) -> int:
        return self._update(task_id, status=TaskStatus.CANCELLED)

    def _update(self, task_id: int, **fields) -> int:
        if LocalTask.objects.filter(pk=task_id).update(**fields) != 1:
            raise TaskNotFound(task_id)
        return task_id


def _snapshot(task: LocalTask) -> Task:
    return Task(
        id=task.pk,
        title=task.title,
        status=task.status,
        assignee_id=task.assignee_id,
        email_id=task.email_id,
        completed_at=task.completed_at,
    )


def task_backend() -> TaskBackend:
    """The task backend in use. Only the local store exists so far; a setting will choose Jira or Asana."""
    return LocalTaskBackend()
