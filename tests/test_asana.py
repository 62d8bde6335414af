"""What only the Asana task backend does, against a loopback Asana that checks requests as REST API 1.0 documents.

The task's fields, and the workspace or project it needs. What Jira and
Asana share is in test_remote_tasks.py.
"""

from __future__ import annotations

import pytest

from actions.models import ActionStatus
from integrations.errors import Unavailable
from integrations.models import LocalTask
from integrations.tasks import task_backend
from tests.task_servers import execute

S = ActionStatus


def test_create_task_makes_an_asana_task_with_the_documented_fields(asana, create_task, task_team):
    liam = asana.add_user("liam@acme.example")
    action = execute(
        create_task(assignee="liam@acme.example", description="Card ending 42", due_at="2026-11-20T16:00:00+01:00")
    )
    assert action.status == S.SUCCEEDED, action.last_error
    [task] = asana.tasks.values()
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


def test_a_workspace_or_project_is_required(asana, settings):
    settings.ASANA_PROJECT = settings.ASANA_WORKSPACE = ""
    with pytest.raises(Unavailable, match="needs ASANA_PROJECT"):
        task_backend()
