"""The fixtures that point the task backend at the loopback Jira and Asana (tests/task_fakes.py), and shared steps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import timezone

from actions.executor import queue_action, run_action
from actions.models import Action, ActionStatus
from actions.sweeper import requeue_due_retries
from integrations.models import LocalTask
from teams.directory import import_directory
from teams.models import TeamMember
from tests.processes import LOOPBACK, free_port
from tests.task_fakes import FakeAsana, FakeJira, TaskSystem
from tests.team_data import member

# --- Fixtures and steps the task suites share ------------------------------------------------

JIRA_TOKEN = "jira-secret-token-0123456789"
ASANA_TOKEN = "asana-secret-token-0123456789"


def serve(service: TaskSystem, settings: Any, **values: Any) -> Iterator[TaskSystem]:
    """Point these settings at the service while the test runs; fail the test if it refused a request's shape."""
    for name, value in values.items():
        setattr(settings, name, value)
    yield service
    service.stop()
    if service.problems:
        pytest.fail(f"Requests {type(service).__name__} would refuse: {service.problems}")


@pytest.fixture
def jira(settings) -> Iterator[FakeJira]:
    """A loopback Jira, with TASK_BACKEND=jira pointed at it."""
    service = FakeJira("mailroom@acme.example", JIRA_TOKEN)
    yield from serve(
        service,
        settings,
        TASK_BACKEND="jira",
        JIRA_URL=service.url,
        JIRA_EMAIL="mailroom@acme.example",
        JIRA_API_TOKEN=JIRA_TOKEN,
        JIRA_PROJECT_KEY=FakeJira.PROJECT,
        JIRA_ISSUE_TYPE="Task",
        JIRA_CANCEL_TRANSITION="",
        JIRA_SET_PRIORITY=True,
    )


@pytest.fixture
def asana(settings) -> Iterator[FakeAsana]:
    """A loopback Asana, with TASK_BACKEND=asana pointed at it."""
    service = FakeAsana(ASANA_TOKEN)
    yield from serve(
        service,
        settings,
        TASK_BACKEND="asana",
        ASANA_BASE_URL=service.url,
        ASANA_TOKEN=ASANA_TOKEN,
        ASANA_WORKSPACE=FakeAsana.WORKSPACE,
        ASANA_PROJECT=FakeAsana.PROJECT,
    )


@pytest.fixture
def task_team(db) -> dict[str, Any]:
    """Liam and Olivia, billing agents in Europe."""
    import_directory(
        {
            "members": [
                member("Priya Natarajan", "lead", None, {"reporting": 5}, "Europe/London", "00:00-23:59"),
                member("Liam OBrien", "agent", "priya", {"billing": 4}, "Europe/Dublin", "00:00-23:59"),
                member("Olivia Hart", "agent", "priya", {"billing": 2}, "Europe/London", "00:00-23:59"),
            ]
        }
    )
    return {m.user.first_name.lower(): m for m in TeamMember.objects.select_related("user")}


@pytest.fixture
def create_task(make_action, task_team) -> Callable[..., Action]:
    """Proposes a create_task action for "Refund order 1234", with these params as well."""

    def make(**params: Any) -> Action:
        return make_action("create_task", params={"title": "Refund order 1234", **params})

    return make


def task_for_liam(service: TaskSystem, create_task: Callable[..., Action]) -> LocalTask:
    """The row of a task a create_task action made for Liam, whom the service knows."""
    service.add_user("liam@acme.example", "Liam OBrien")
    action = execute(create_task(assignee="liam@acme.example"))
    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    return LocalTask.objects.get(action=action)


def execute(action: Action) -> Action:
    """Run the action as a worker does (queued first, or requeued when its retry is due); return it as left."""
    action.refresh_from_db()
    if action.status == ActionStatus.FAILED:
        # The retry's time has come: the sweeper puts it back on the queue.
        Action.objects.filter(pk=action.pk).update(next_attempt_at=timezone.now())
        requeue_due_retries(timezone.now())
    elif action.status != ActionStatus.QUEUED:
        queue_action(action, actor="test")
    Action.objects.filter(pk=action.pk).update(next_attempt_at=None)
    run_action(action.pk)
    action.refresh_from_db()
    return action


@pytest.fixture
def unused_url() -> str:
    """The URL of a loopback port nobody listens on."""
    return f"http://{LOOPBACK}:{free_port()}"
