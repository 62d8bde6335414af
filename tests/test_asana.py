"""The Asana task backend against a loopback Asana that checks each request as REST API 1.0 documents it.

Actions run through the executor (queue, run_action, undo_action), so what
is asserted is what a worker leaves: the action's status and error, the
LocalTask row, and the task in Asana.
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
from integrations.models import LocalTask, TaskStatus
from integrations.tasks import task_backend
from tests.task_servers import ASANA_TOKEN, execute

S = ActionStatus


class Crash(Exception):
    """The process dying before its transaction commits."""


@pytest.fixture
def create(make_action, task_team):
    def make(**params):
        return make_action("create_task", params={"title": "Refund order 1234", **params})

    return make


@pytest.fixture
def made(asana, create):
    """A task made by a create_task action for Liam, and its LocalTask row."""
    asana.add_user("liam@acme.example")
    action = execute(create(assignee="liam@acme.example"))
    assert action.status == S.SUCCEEDED, action.last_error
    return LocalTask.objects.get(action=action)


def only_task(asana) -> dict:
    [task] = asana.tasks.values()
    return task


def test_create_task_makes_an_asana_task_with_the_documented_fields(asana, create, task_team):
    liam = asana.add_user("liam@acme.example")
    action = execute(
        create(assignee="liam@acme.example", description="Card ending 42", due_at="2026-11-20T16:00:00+01:00")
    )
    assert action.status == S.SUCCEEDED, action.last_error
    task = only_task(asana)
    assert (task["name"], task["due_at"], task["assignee"]["gid"]) == (
        "Refund order 1234",
        "2026-11-20T15:00:00Z",
        liam,
    )
    assert task["notes"] == f"Card ending 42\n\nCreated by Mailroom for action #{action.pk}."
    assert task["external"] == {"gid": f"mailroom-action-{action.pk}"}
    row = LocalTask.objects.get(action=action)
    assert (row.backend, row.external_id, row.external_url) == ("asana", task["gid"], task["permalink_url"])
    assert row.assignee == task_team["liam"]
    assert action.result["external_id"] == task["gid"]


def test_an_address_asana_does_not_know_makes_the_task_unassigned(asana, create, task_team):
    action = execute(create(assignee="liam@acme.example"))
    assert action.status == S.SUCCEEDED, action.last_error
    assert only_task(asana)["assignee"] is None
    assert LocalTask.objects.get(action=action).assignee == task_team["liam"]


def test_running_create_twice_makes_one_task(asana, create):
    action = create()
    handler = get_handler(action.type)
    first = handler.execute(action, handler.parse(action))
    second = handler.execute(action, handler.parse(action))
    assert len(asana.tasks) == 1
    assert first.result == second.result


def test_a_create_whose_row_was_lost_finds_its_task_by_external_gid(asana, create):
    action = create()
    handler = get_handler(action.type)
    with pytest.raises(Crash), transaction.atomic():
        handler.execute(action, handler.parse(action))
        raise Crash  # The task is made; the row and the audit entry are rolled back.
    assert not LocalTask.objects.filter(action=action).exists()
    action = execute(action)
    assert action.status == S.SUCCEEDED, action.last_error
    assert len(asana.tasks) == 1
    assert LocalTask.objects.get(action=action).external_id == only_task(asana)["gid"]
    assert ("GET", f"/tasks/external:mailroom-action-{action.pk}") in asana.requests


def test_undoing_create_task_deletes_the_task(asana, made):
    undo_action(made.action, actor="test")
    assert asana.tasks == {}
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.CANCELLED


def test_an_undo_retried_after_its_delete_went_through_succeeds(asana, made):
    asana.tasks.clear()
    undo_action(made.action, actor="test")
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.CANCELLED


def test_marking_the_task_complete_completes_it_and_undo_reopens_it(asana, made, make_action):
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": made.pk}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert only_task(asana)["completed"] is True
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.DONE
    undo_action(action, actor="test")
    assert only_task(asana)["completed"] is False
    assert LocalTask.objects.get(pk=made.pk).status == TaskStatus.OPEN


def test_delegating_reassigns_the_task_comments_and_undo_gives_it_back(asana, made, make_action, task_team):
    olivia = asana.add_user("olivia@acme.example")
    action = execute(make_action("delegate_task", params={"task_id": made.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    task = only_task(asana)
    assert task["assignee"]["gid"] == olivia
    assert task["stories"] == ["Mailroom handed this task to Olivia Hart (olivia@acme.example)."]
    undo_action(action, actor="test")
    assert task["assignee"]["gid"] == asana.users["liam@acme.example"]
    assert LocalTask.objects.get(pk=made.pk).assignee == task_team["liam"]


def test_delegating_to_someone_asana_does_not_know_only_comments(asana, made, make_action, task_team):
    action = execute(make_action("delegate_task", params={"task_id": made.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    task = only_task(asana)
    assert task["assignee"]["gid"] == asana.users["liam@acme.example"]
    [story] = task["stories"]
    assert "Olivia Hart" in story
    assert "assignee is unchanged" in story
    assert LocalTask.objects.get(pk=made.pk).assignee == task_team["olivia"]


# --- Errors ------------------------------------------------------------------------------


def test_a_401_fails_the_action_for_good_without_the_token_in_the_error(asana, create, settings):
    settings.ASANA_TOKEN = "a-revoked-token"
    action = execute(create())
    assert action.status == S.DEAD
    assert "HTTP 401" in action.last_error
    assert "revoked" not in action.last_error
    assert asana.tasks == {}


def test_a_task_deleted_in_asana_fails_its_completion_for_good(asana, made, make_action):
    asana.tasks.clear()
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": made.pk}))
    assert action.status == S.DEAD
    assert f"Asana task {made.external_id} (task {made.pk}) does not exist any more" in action.last_error


def test_it_retries_a_429_no_sooner_than_asana_asks(asana, create, settings):
    settings.RETRY_MAX_SECONDS = 1
    asana.fail_next(429, retry_after=30)
    before = timezone.now()
    action = execute(create())
    assert action.status == S.FAILED
    assert action.next_attempt_at >= before + timedelta(seconds=29)
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert len(asana.tasks) == 1


def test_it_retries_a_500(asana, create):
    asana.fail_next(500)
    action = execute(create())
    assert (action.status, action.attempts) == (S.FAILED, 1)
    assert "HTTP 500" in action.last_error
    assert execute(action).status == S.SUCCEEDED, action.last_error


def test_it_retries_when_asana_cannot_be_reached(asana, create, settings, unused_url):
    settings.ASANA_BASE_URL = unused_url
    action = execute(create())
    assert action.status == S.FAILED
    assert "Could not reach 127.0.0.1" in action.last_error


# --- Health and settings ----------------------------------------------------------------


def test_health_says_asana_answers(asana):
    health = registry.check("tasks")
    assert (health.ok, health.backend) == (True, "asana")
    assert "Mailroom Bot" in health.detail


def test_health_is_down_on_a_401_and_keeps_the_token_out(asana):
    asana.fail_next(401)
    health = task_backend().health()
    assert not health.ok
    assert "HTTP 401" in health.detail
    assert ASANA_TOKEN not in health.detail


def test_health_is_down_when_asana_cannot_be_reached(asana, settings, unused_url):
    settings.ASANA_BASE_URL = unused_url
    assert not registry.check("tasks").ok


def test_a_workspace_or_project_is_required(asana, settings):
    settings.ASANA_PROJECT = settings.ASANA_WORKSPACE = ""
    with pytest.raises(Unavailable, match="needs ASANA_PROJECT"):
        task_backend()
