"""What only the Jira task backend does, against a loopback Jira Cloud that checks requests as REST API v3 documents.

The issue's fields, finding assignees by address, undo where deleting is
forbidden, and the workflow's transitions. What Jira and Asana share is in
test_remote_tasks.py.
"""

from __future__ import annotations

import pytest

from actions.executor import undo_action
from actions.handlers import UndoRefused
from actions.models import ActionStatus
from integrations.models import LocalTask, TaskStatus
from tests.task_servers import execute, task_for_liam

S = ActionStatus


@pytest.fixture
def issue(jira, create_task) -> LocalTask:
    """An issue made by a create_task action for Liam, and its LocalTask row."""
    return task_for_liam(jira, create_task)


def test_create_task_opens_an_issue_with_the_documented_fields(jira, create_task, task_team):
    liam = jira.add_user("liam@acme.example", "Liam OBrien")
    due = "2026-11-20T16:00:00+01:00"
    action = execute(create_task(assignee="liam@acme.example", description="Order 1234.\n\nCard ending 42", due_at=due))
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


def test_an_address_jira_does_not_know_is_searched_for_before_the_issue_is_left_unassigned(jira, create_task):
    execute(create_task(assignee="liam@acme.example"))
    assert jira.issues["OPS-1"]["assignee"] is None
    assert ("GET", "/rest/api/3/user/search") in jira.requests


def test_a_user_hiding_their_address_is_found_by_it_alone(jira, create_task):
    liam = jira.add_user("liam@acme.example", "Liam OBrien", email_visible=False)
    execute(create_task(assignee="liam@acme.example"))
    assert jira.issues["OPS-1"]["assignee"] == liam


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
