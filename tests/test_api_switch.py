"""/api/v1/execution/: reading the kill switch, and pausing and resuming all execution."""

from __future__ import annotations

import pytest

from actions.models import Action, ActionStatus, AuditEntry, ExecutionSwitch
from tests.api_people import client_for

URL = "/api/v1/execution/"


def test_execution_runs_until_someone_pauses_it(world):
    response = client_for(world.owner).get(URL)
    assert response.status_code == 200
    assert response.json() == {"paused": False, "changed_at": None, "by": None, "reason": ""}


def test_the_owner_pauses_execution_and_the_trail_says_who_and_why(world):
    response = client_for(world.owner).post(f"{URL}pause/", {"reason": "Mail server migration"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["paused"], body["by"], body["reason"]) == (True, "alice", "Mail server migration")
    assert body["changed_at"]
    assert ExecutionSwitch.is_paused()
    entry = AuditEntry.objects.get(event="execution.paused")
    assert (entry.actor_label, entry.details) == ("alice", {"reason": "Mail server migration"})


def test_resuming_sends_the_due_queued_actions_back_to_the_workers(world):
    owner = client_for(world.owner)
    owner.post(f"{URL}pause/")
    Action.objects.filter(pk=world.other_action.pk).update(status=ActionStatus.QUEUED)

    response = owner.post(f"{URL}resume/", {"reason": "Done"})

    assert response.status_code == 200, response.content
    assert (response.json()["paused"], response.json()["enqueued"]) == (False, 1)
    assert not ExecutionSwitch.is_paused()


@pytest.mark.parametrize("persona", ["member", "approver"])
def test_members_and_approvers_see_the_switch_but_may_not_touch_it(world, persona):
    client = client_for(getattr(world, persona))
    assert client.get(URL).status_code == 200
    for change in ("pause", "resume"):
        response = client.post(f"{URL}{change}/")
        assert response.status_code == 403
        assert "actions.change_executionswitch" in response.json()["detail"]
    assert not ExecutionSwitch.objects.exists()
    assert not AuditEntry.objects.filter(event__startswith="execution.").exists()


def test_an_outsider_neither_sees_nor_touches_the_switch(world):
    client = client_for(world.outsider)
    assert client.get(URL).status_code == 403
    assert client.post(f"{URL}pause/").status_code == 403
    assert not ExecutionSwitch.is_paused()


def test_a_stranger_without_credentials_is_asked_for_them(world):
    assert client_for(None).get(URL).status_code == 401
    assert client_for(None).post(f"{URL}pause/").status_code == 401


def test_a_reason_too_long_is_refused_naming_it(world):
    response = client_for(world.owner).post(f"{URL}pause/", {"reason": "x" * 5000})
    assert response.status_code == 400 and "reason" in response.json()
    assert not ExecutionSwitch.is_paused()
