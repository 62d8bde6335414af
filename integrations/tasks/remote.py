"""What the Jira and Asana backends share: the LocalTask row stays Mailroom's record, the change is made there first.

The row keeps the assignee, the email and the status, so handlers work with
its integer id whichever system is in use; it also keeps where the task lives
outside (backend, external_id, external_url). Each change is made outside
first and then on the row: a failure outside leaves the row as it was, and
the action retries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from django.conf import settings

from integrations.base import Health
from integrations.calls import calling
from integrations.errors import IntegrationError, Unavailable
from integrations.http import HTTPError
from integrations.models import LocalTask
from integrations.tasks.base import TaskNotFound
from integrations.tasks.local import LocalTaskBackend
from teams.models import TeamMember


@dataclass(frozen=True)
class Person:
    """A team member as a task system sees them: a name to write and an address to look them up by."""

    name: str
    email: str


@dataclass(frozen=True)
class NewTask:
    """A task to create outside, for one action."""

    action_id: int
    title: str
    description: str
    priority: int
    due_at: datetime | None
    assignee: Person | None

    @property
    def marker(self) -> str:
        """The action's mark on the task outside, by which a redelivered create finds it instead of making a twin."""
        return f"mailroom-action-{self.action_id}"

    @property
    def notes(self) -> str:
        footer = f"Created by Mailroom for action #{self.action_id}."
        return f"{self.description.strip()}\n\n{footer}" if self.description.strip() else footer


@dataclass(frozen=True)
class Made:
    """A task as it exists outside: its id there (issue key, task gid) and a link for people."""

    id: str
    url: str


def person(member_id: int | None) -> Person | None:
    member = TeamMember.objects.select_related("user").filter(pk=member_id).first() if member_id else None
    if member is None:
        return None
    return Person(name=member.user.get_full_name() or str(member), email=member.user.email)


class RemoteTaskBackend(LocalTaskBackend):
    """Tasks kept in a system outside Mailroom as well as in LocalTask rows."""

    # The system's name and how people call one task there, for messages: "Jira", "Jira issue".
    system: ClassVar[str]
    label: ClassVar[str]

    def require_settings(self, *names: str) -> None:
        """Unavailable, naming what to set, when any of these settings is empty."""
        missing = [name for name in names if not getattr(settings, name)]
        if missing:
            raise Unavailable(
                f"The {self.system} task backend needs {', '.join(missing)}; set them, or TASK_BACKEND=local.",
                capability=self.capability,
            )

    def health(self) -> Health:
        try:
            user = self.signed_in_as()
        except IntegrationError as exc:
            return self.unhealthy(f"{self.system}: {exc}")
        return self.healthy(f"{self.system} answers, signed in as {user or 'the API user'}.")

    # --- What each system implements ----------------------------------------------

    def signed_in_as(self) -> str:
        """The name of the user Mailroom signs in as, by one cheap call."""
        raise NotImplementedError

    def find(self, marker: str) -> Made | None:
        """The task an earlier create for this marker made, if any."""
        raise NotImplementedError

    def make(self, task: NewTask) -> Made:
        raise NotImplementedError

    def set_completed(self, external_id: str, completed: bool) -> None:
        raise NotImplementedError

    def remove(self, external_id: str) -> None:
        raise NotImplementedError

    def hand_over(self, external_id: str, to: Person | None) -> None:
        """Give the task to `to` (or to nobody), and say so on the task."""
        raise NotImplementedError

    # --- Creating (place) and the TaskBackend calls: outside first, then the row -----------

    def place(self, task: LocalTask) -> None:
        assignee = person(task.assignee_id)
        new = NewTask(task.action_id, task.title, task.description, task.priority, task.due_at, assignee)
        # The row is saved after the task is made outside; if the process died
        # in between, the task is there without a row: find it, do not make a twin.
        with calling(self.capability):
            made = self.find(new.marker) or self.make(new)
        task.backend, task.external_id, task.external_url = self.name, made.id, made.url

    def reassign(self, task_id: int, assignee_id: int | None) -> int:
        self._outside(task_id, lambda external_id: self.hand_over(external_id, person(assignee_id)))
        return super().reassign(task_id, assignee_id)

    def complete(self, task_id: int) -> int:
        self._outside(task_id, lambda external_id: self.set_completed(external_id, True))
        return super().complete(task_id)

    def reopen(self, task_id: int) -> int:
        self._outside(task_id, lambda external_id: self.set_completed(external_id, False))
        return super().reopen(task_id)

    def cancel(self, task_id: int) -> int:
        # Gone there already (an undo retried after its delete went through) is what cancelling wants.
        with contextlib.suppress(TaskNotFound):
            self._outside(task_id, self.remove)
        return super().cancel(task_id)

    def _outside(self, task_id: int, change: Callable[[str], None]) -> None:
        """Make `change` to the task's counterpart outside, if it has one here."""
        row = LocalTask.objects.filter(pk=task_id).values("backend", "external_id").first()
        if row is None:
            raise TaskNotFound(task_id)
        if row["backend"] == "local" or not row["external_id"]:
            return  # Made before TASK_BACKEND named this system: only Mailroom has it.
        if row["backend"] != self.name:
            raise IntegrationError(
                f"Task {task_id} is kept in {row['backend']}, but TASK_BACKEND is {self.name}: "
                f"change it in {row['backend']}.",
                permanent=True,
            )
        with calling(self.capability):
            try:
                change(row["external_id"])
            except HTTPError as exc:
                if exc.status == 404:
                    raise TaskNotFound(
                        task_id, f"{self.label} {row['external_id']} (task {task_id}) does not exist any more."
                    ) from None
                raise
