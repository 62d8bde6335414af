"""The local task store: tasks kept in Mailroom's own database (LocalTask), the default task backend."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.models import LocalTask, TaskStatus
from integrations.tasks.base import Task, TaskBackend, TaskNotFound


class LocalTaskBackend(TaskBackend):
    """Tasks kept in Mailroom's own database (LocalTask), shown in the admin."""

    name = "local"

    def get(self, task_id: int, *, for_update: bool = False) -> Task:
        tasks = LocalTask.objects.select_for_update() if for_update else LocalTask.objects
        task = tasks.filter(pk=task_id).first()
        if task is None:
            raise TaskNotFound(task_id)
        return snapshot(task)

    def open_task_for_email(self, email_id: int) -> Task | None:
        tasks = LocalTask.objects.filter(email_id=email_id, status=TaskStatus.OPEN)
        task = tasks.order_by("-created_at", "-pk").first()
        return snapshot(task) if task else None

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
        existing = task_of(action_id)
        if existing is not None:
            return existing
        task = LocalTask(
            action_id=action_id,
            title=title,
            description=description,
            priority=priority,
            due_at=due_at,
            assignee_id=assignee_id,
            email_id=email_id,
        )
        self.place(task)
        try:
            with transaction.atomic():
                task.save()
        except IntegrityError:
            # Another run of the action saved its row first: that one is the task.
            existing = task_of(action_id)
            if existing is None:
                raise
            return existing
        return task.pk

    def place(self, task: LocalTask) -> None:
        """Make the new task wherever else it lives and note where on its row, before the row is saved.

        The local store keeps it in the row alone.
        """

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


def task_of(action_id: int) -> int | None:
    """The id of the task the action created, if it has one."""
    return LocalTask.objects.filter(action_id=action_id).values_list("pk", flat=True).first()


def snapshot(task: LocalTask) -> Task:
    """The Task handlers see of a LocalTask row."""
    return Task(
        id=task.pk,
        title=task.title,
        status=task.status,
        assignee_id=task.assignee_id,
        email_id=task.email_id,
        completed_at=task.completed_at,
        backend=task.backend,
        external_id=task.external_id,
        external_url=task.external_url,
    )
