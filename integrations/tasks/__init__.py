"""Task backends: where tasks live. The local store (Mailroom's own database), Jira or Asana, by TASK_BACKEND.

A backend is a handful of calls that take and return task ids; handlers
decide what to create or change, the backend only talks to its system.
Whichever it is, a LocalTask row is Mailroom's record of each task; Jira and
Asana also keep the task there (README, "Tasks"). Errors are
IntegrationError, as from every backend.
"""

from __future__ import annotations

from django.conf import settings

from integrations.tasks.base import Task, TaskBackend, TaskNotFound
from integrations.tasks.local import LocalTaskBackend


def task_backend() -> TaskBackend:
    """The task backend TASK_BACKEND names. Unavailable (permanent) when its settings are missing."""
    if settings.TASK_BACKEND == "jira":
        from integrations.tasks.jira import JiraTaskBackend

        return JiraTaskBackend()
    if settings.TASK_BACKEND == "asana":
        from integrations.tasks.asana import AsanaTaskBackend

        return AsanaTaskBackend()
    return LocalTaskBackend()


__all__ = ["LocalTaskBackend", "Task", "TaskBackend", "TaskNotFound", "task_backend"]
