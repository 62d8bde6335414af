"""What holds for every task system outside Mailroom, checked against loopback Jira and Asana in turn.

Actions run through the executor (queue, run_action, undo_action), so what
is asserted is what a worker leaves: the action's status and error, the
LocalTask row, and the task there. What only one system does is in
test_jira.py and test_asana.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from actions.executor import undo_action
from actions.handlers import get_handler
from actions.models import ActionStatus
from integrations import registry
from integrations.errors import Unavailable
from integrations.models import CallOutcome, Circuit, IntegrationCalls, LocalTask, TaskStatus
from integrations.tasks import task_backend
from tests.task_fakes import TaskSystem
from tests.task_servers import execute, task_for_liam

S = ActionStatus


class Crash(Exception):
    """The process dying before its transaction commits."""


@pytest.fixture(params=["jira", "asana"])
def system(request) -> TaskSystem:
    """Each loopback task system in turn, with TASK_BACKEND pointed at it."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def made(system, create_task) -> LocalTask:
    """A task made there by a create_task action for Liam, and its LocalTask row."""
    return task_for_liam(system, create_task)


def test_an_address_it_does_not_know_leaves_the_task_unassigned_there(system, create_task, task_team):
    action = execute(create_task(assignee="liam@acme.example"))
    assert action.status == S.SUCCEEDED, action.last_error
    [external_id] = system.ids()
    assert system.assignee(external_id) is None
    assert LocalTask.objects.get(action=action).assignee == task_team["liam"]


def test_running_create_twice_makes_one_task(system, create_task):
    action = create_task()
    handler = get_handler(action.type)
    first = handler.execute(action, handler.parse(action))
    second = handler.execute(action, handler.parse(action))
    assert system.ids() == [first.result["external_id"]]
    assert first.result == second.result


def test_a_create_whose_row_was_lost_finds_its_task_instead_of_making_a_second(system, create_task):
    action = create_task()
    handler = get_handler(action.type)
    with pytest.raises(Crash), transaction.atomic():
        handler.execute(action, handler.parse(action))
        raise Crash  # The task is made; the row and the audit entry are rolled back.
    [external_id] = system.ids()
    assert not LocalTask.objects.filter(action=action).exists()
    action = execute(action)
    assert action.status == S.SUCCEEDED, action.last_error
    assert system.ids() == [external_id]
    assert LocalTask.objects.get(action=action).external_id == external_id
    assert system.lookup(f"mailroom-action-{action.pk}") in system.requests


def test_undoing_create_task_deletes_the_task(system, made):
    undo_action(made.action, actor="test")
    assert system.ids() == []
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.CANCELLED


def test_an_undo_retried_after_its_delete_went_through_succeeds(system, made):
    system.forget(made.external_id)  # Deleted, then the process died before the row said so.
    undo_action(made.action, actor="test")
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.CANCELLED


def test_marking_the_task_complete_completes_it_there_and_undo_reopens_it(system, made, make_action):
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": made.pk}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert system.state(made.external_id) == "done"
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.DONE
    undo_action(action, actor="test")
    assert system.state(made.external_id) == "open"
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.OPEN


def test_delegating_reassigns_the_task_comments_and_undo_gives_it_back(system, made, make_action, task_team):
    olivia = system.add_user("olivia@acme.example", "Olivia Hart")
    action = execute(make_action("delegate_task", params={"task_id": made.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert system.assignee(made.external_id) == olivia
    assert system.comments(made.external_id) == [
        f"Mailroom handed this {system.NOUN} to Olivia Hart (olivia@acme.example)."
    ]
    assert LocalTask.objects.get(pk=made.pk).assignee == task_team["olivia"]
    undo_action(action, actor="test")
    assert system.assignee(made.external_id) == system.account("liam@acme.example")
    assert LocalTask.objects.get(pk=made.pk).assignee == task_team["liam"]
    assert len(system.comments(made.external_id)) == 2


def test_delegating_to_someone_it_does_not_know_only_comments(system, made, make_action, task_team):
    action = execute(make_action("delegate_task", params={"task_id": made.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert system.assignee(made.external_id) == system.account("liam@acme.example")  # Still Liam's there.
    [comment] = system.comments(made.external_id)
    assert "Olivia Hart" in comment
    assert "assignee is unchanged" in comment
    assert LocalTask.objects.get(pk=made.pk).assignee == task_team["olivia"]


# --- Errors ------------------------------------------------------------------------------


def test_a_401_fails_the_action_for_good_without_the_token_in_the_error(system, create_task, settings):
    setattr(settings, system.TOKEN_SETTING, "a-revoked-token")
    action = execute(create_task())
    assert action.status == S.DEAD
    assert "HTTP 401" in action.last_error
    assert "revoked" not in action.last_error
    assert system.ids() == []


def test_a_task_deleted_there_fails_its_completion_for_good(system, made, make_action):
    system.forget(made.external_id)
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": made.pk}))
    assert action.status == S.DEAD
    assert f"{system.LABEL} {made.external_id} (task {made.pk}) does not exist any more" in action.last_error
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.OPEN


def test_a_completion_the_system_fails_for_now_counts_on_the_tasks_circuit(system, made, make_action):
    system.fail_next(503)
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": made.pk}))
    assert action.status == S.FAILED
    assert Circuit.objects.get(name="tasks").failures == 1
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert Circuit.objects.get(name="tasks").failures == 0
    # The create that made the task, and the completion's retry.
    assert IntegrationCalls.objects.get(capability="tasks", outcome=CallOutcome.SUCCESS).count == 2


def test_it_retries_a_429_no_sooner_than_asked(system, create_task, settings):
    settings.RETRY_MAX_SECONDS = 1
    system.fail_next(429, retry_after=120)
    before = timezone.now()
    action = execute(create_task())
    assert action.status == S.FAILED
    assert action.next_attempt_at >= before + timedelta(seconds=119)
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert system.ids() == [LocalTask.objects.get(action=action).external_id]


def test_it_retries_a_500_and_the_retry_makes_one_task(system, create_task):
    system.fail_next(500)
    action = execute(create_task())
    assert (action.status, action.attempts) == (S.FAILED, 1)
    assert "HTTP 500" in action.last_error
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert system.ids() == [LocalTask.objects.get(action=action).external_id]


def test_it_retries_when_it_cannot_be_reached(system, create_task, settings, unused_url):
    setattr(settings, system.URL_SETTING, unused_url)
    action = execute(create_task())
    assert action.status == S.FAILED
    assert "Could not reach 127.0.0.1" in action.last_error


# --- Health and settings ----------------------------------------------------------------


def test_health_says_it_answers(system):
    health = registry.check("tasks")
    assert (health.ok, health.backend) == (True, system.BACKEND)
    assert "Mailroom Bot" in health.detail


def test_health_is_down_on_a_401_and_keeps_the_token_out(system, settings):
    token = getattr(settings, system.TOKEN_SETTING)
    system.fail_next(401)
    health = task_backend().health()
    assert not health.ok
    assert "HTTP 401" in health.detail
    assert token not in health.detail


def test_health_is_down_when_it_cannot_be_reached(system, settings, unused_url):
    setattr(settings, system.URL_SETTING, unused_url)
    health = registry.check("tasks")
    assert not health.ok
    assert "Could not reach" in health.detail


def test_missing_settings_are_named(system, settings):
    setattr(settings, system.TOKEN_SETTING, "")
    with pytest.raises(Unavailable, match=f"needs {system.TOKEN_SETTING}"):
        task_backend()
    assert not registry.check("tasks").ok
