"""The Jira task backend against a loopback Jira Cloud that checks each request as the REST API v3 documents it.

Actions run through the executor (queue, run_action, undo_action), so what
is asserted is what a worker leaves: the action's status and error, the
LocalTask row, and the issue in Jira.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from actions.executor import undo_action
from actions.handlers import UndoRefused, get_handler
from actions.models import ActionStatus
from integrations import registry
from integrations.errors import Unavailable
from integrations.models import LocalTask, TaskStatus
from integrations.tasks import task_backend
from tests.task_servers import JIRA_TOKEN, execute

S = ActionStatus


class Crash(Exception):
    """The process dying before its transaction commits."""


@pytest.fixture
def create(make_action, task_team):
    def make(**params):
        return make_action("create_task", params={"title": "Refund order 1234", **params})

    return make


@pytest.fixture
def issue(jira, create):
    """An issue made by a create_task action for Liam, and its LocalTask row."""
    jira.add_user("liam@acme.example", "Liam OBrien")
    action = execute(create(assignee="liam@acme.example"))
    assert action.status == S.SUCCEEDED, action.last_error
    return LocalTask.objects.get(action=action)


def test_create_task_opens_an_issue_with_the_documented_fields(jira, create, task_team):
    liam = jira.add_user("liam@acme.example", "Liam OBrien")
    due = "2026-11-20T16:00:00+01:00"
    action = execute(create(assignee="liam@acme.example", description="Order 1234.\n\nCard ending 42", due_at=due))
    assert action.status == S.SUCCEEDED, action.last_error
    [issue] = jira.issues.values()
    fields = issue["fields"]
    assert (fields["summary"], fields["issuetype"], fields["project"]) == (
        "Refund order 1234",
        {"name": "Task"},
        {"key": "OPS"},
    )
    assert fields["labels"] == ["mailroom", f"mailroom-action-{action.pk}"]
    assert fields["duedate"] == "2026-11-20"
    assert fields["priority"] == {"name": "Medium"}
    assert issue["assignee"] == liam
    assert fields["description"]["content"][0] == {
        "type": "paragraph",
        "content": [{"type": "text", "text": "Order 1234."}],
    }
    task = LocalTask.objects.get(action=action)
    assert (task.backend, task.external_id, task.external_url) == ("jira", "OPS-1", f"{jira.url}/browse/OPS-1")
    assert (task.assignee, task.status) == (task_team["liam"], TaskStatus.OPEN)
    assert action.result["external_url"] == f"{jira.url}/browse/OPS-1"


def test_an_address_jira_does_not_know_leaves_the_issue_unassigned(jira, create):
    action = execute(create(assignee="liam@acme.example"))
    assert action.status == S.SUCCEEDED
    assert jira.issues["OPS-1"]["assignee"] is None
    assert ("GET", "/rest/api/3/user/search") in jira.requests


def test_a_user_hiding_their_address_is_found_by_it_alone(jira, create):
    liam = jira.add_user("liam@acme.example", "Liam OBrien", email_visible=False)
    execute(create(assignee="liam@acme.example"))
    assert jira.issues["OPS-1"]["assignee"] == liam


def test_running_create_twice_makes_one_issue(jira, create):
    action = create()
    handler = get_handler(action.type)
    first = handler.execute(action, handler.parse(action))
    second = handler.execute(action, handler.parse(action))
    assert list(jira.issues) == ["OPS-1"]
    assert first.result == second.result


def test_a_create_whose_row_was_lost_finds_its_issue_instead_of_making_a_second(jira, create):
    action = create()
    handler = get_handler(action.type)
    with pytest.raises(Crash), transaction.atomic():
        handler.execute(action, handler.parse(action))
        raise Crash  # The issue is made; the row and the audit entry are rolled back.
    assert list(jira.issues) == ["OPS-1"]
    assert not LocalTask.objects.filter(action=action).exists()
    action = execute(action)
    assert action.status == S.SUCCEEDED
    assert list(jira.issues) == ["OPS-1"]
    assert LocalTask.objects.get(action=action).external_id == "OPS-1"
    assert ("POST", "/rest/api/3/search/jql") in jira.requests


def test_undoing_create_task_deletes_the_issue(jira, issue):
    undo_action(issue.action, actor="test")
    assert jira.issues == {}
    issue.refresh_from_db()
    assert issue.status == TaskStatus.CANCELLED


def test_where_deleting_is_forbidden_undo_closes_the_issue_by_the_cancel_transition(jira, issue, settings):
    jira.can_delete = False
    settings.JIRA_CANCEL_TRANSITION = "Won't Do"
    undo_action(issue.action, actor="test")
    assert jira.issues["OPS-1"]["status"] == "Won't Do"
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.CANCELLED


def test_where_deleting_is_forbidden_and_no_cancel_transition_is_set_undo_fails_saying_so(jira, issue):
    jira.can_delete = False
    with pytest.raises(UndoRefused, match="JIRA_CANCEL_TRANSITION"):
        undo_action(issue.action, actor="test")
    assert jira.issues["OPS-1"]["status"] == "To Do"
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.OPEN


def test_an_undo_retried_after_its_delete_went_through_succeeds(jira, issue):
    del jira.issues["OPS-1"]  # Deleted, then the process died before the row said so.
    undo_action(issue.action, actor="test")
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.CANCELLED


def test_marking_the_task_complete_moves_the_issue_to_done_and_undo_reopens_it(jira, issue, make_action):
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": issue.pk}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert jira.issues["OPS-1"]["status"] == "Done"
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.DONE
    undo_action(action, actor="test")
    assert jira.issues["OPS-1"]["status"] == "To Do"
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.OPEN


def test_a_completion_retried_after_its_transition_went_through_succeeds(jira, issue, make_action):
    jira.issues["OPS-1"]["status"] = "Done"
    jira.reachable.discard("Done")  # Jira offers no transition to where the issue already is.
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": issue.pk}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.DONE


def test_a_workflow_without_the_done_transition_fails_for_good_naming_what_it_offers(jira, issue, make_action):
    jira.reachable.discard("Done")
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": issue.pk}))
    assert action.status == S.DEAD
    assert "no transition named 'Done' for OPS-1" in action.last_error
    assert "'In Progress'" in action.last_error


def test_delegating_assigns_the_issue_comments_and_undo_gives_it_back(jira, issue, make_action, task_team):
    olivia = jira.add_user("olivia@acme.example", "Olivia Hart")
    action = execute(make_action("delegate_task", params={"task_id": issue.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert jira.issues["OPS-1"]["assignee"] == olivia
    assert jira.issues["OPS-1"]["comments"] == ["Mailroom handed this issue to Olivia Hart (olivia@acme.example)."]
    assert LocalTask.objects.get(pk=issue.pk).assignee == task_team["olivia"]
    undo_action(action, actor="test")
    assert jira.issues["OPS-1"]["assignee"] == jira.users[0]["accountId"]
    assert LocalTask.objects.get(pk=issue.pk).assignee == task_team["liam"]
    assert len(jira.issues["OPS-1"]["comments"]) == 2


def test_delegating_to_someone_jira_does_not_know_only_comments(jira, issue, make_action, task_team):
    action = execute(make_action("delegate_task", params={"task_id": issue.pk, "to": "olivia@acme.example"}))
    assert action.status == S.SUCCEEDED, action.last_error
    assert jira.issues["OPS-1"]["assignee"] == jira.users[0]["accountId"]  # Still Liam's in Jira.
    [comment] = jira.issues["OPS-1"]["comments"]
    assert "Olivia Hart" in comment
    assert "assignee is unchanged" in comment
    assert LocalTask.objects.get(pk=issue.pk).assignee == task_team["olivia"]


# --- Errors ------------------------------------------------------------------------------


def test_a_401_fails_the_action_for_good_without_the_token_in_the_error(jira, create, settings):
    settings.JIRA_API_TOKEN = "a-revoked-token"
    action = execute(create())
    assert action.status == S.DEAD
    assert "HTTP 401" in action.last_error
    assert "revoked" not in action.last_error
    assert jira.issues == {}


def test_an_issue_deleted_in_jira_fails_its_completion_for_good(jira, issue, make_action):
    del jira.issues["OPS-1"]
    action = execute(make_action("mark_complete", params={"target": "task", "task_id": issue.pk}))
    assert action.status == S.DEAD
    assert f"Jira issue OPS-1 (task {issue.pk}) does not exist any more" in action.last_error
    assert LocalTask.objects.get(pk=issue.pk).status == TaskStatus.OPEN


def test_it_retries_a_429_no_sooner_than_jira_asks(jira, create, settings):
    settings.RETRY_MAX_SECONDS = 1
    jira.fail_next(429, retry_after=120)
    before = timezone.now()
    action = execute(create())
    assert action.status == S.FAILED
    assert action.next_attempt_at >= before + timedelta(seconds=119)
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert list(jira.issues) == ["OPS-1"]


def test_it_retries_a_500_and_the_retry_makes_one_issue(jira, create):
    jira.fail_next(500)
    action = execute(create())
    assert (action.status, action.attempts) == (S.FAILED, 1)
    assert "HTTP 500" in action.last_error
    assert execute(action).status == S.SUCCEEDED, action.last_error
    assert list(jira.issues) == ["OPS-1"]


def test_it_retries_when_jira_cannot_be_reached(jira, create, settings, unused_url):
    settings.JIRA_URL = unused_url
    action = execute(create())
    assert action.status == S.FAILED
    assert "Could not reach 127.0.0.1" in action.last_error


# --- Health and settings ----------------------------------------------------------------


def test_health_says_jira_answers(jira):
    health = registry.check("tasks")
    assert (health.ok, health.backend) == (True, "jira")
    assert "Mailroom Bot" in health.detail


def test_health_is_down_on_a_401_and_keeps_the_token_out(jira):
    jira.fail_next(401)
    health = task_backend().health()
    assert not health.ok
    assert "HTTP 401" in health.detail
    assert JIRA_TOKEN not in health.detail


def test_health_is_down_when_jira_cannot_be_reached(jira, settings, unused_url):
    settings.JIRA_URL = unused_url
    health = registry.check("tasks")
    assert not health.ok
    assert "Could not reach" in health.detail


def test_missing_settings_are_named(jira, settings):
    settings.JIRA_API_TOKEN = ""
    with pytest.raises(Unavailable, match="needs JIRA_API_TOKEN"):
        task_backend()
    assert not registry.check("tasks").ok
