"""/api/v1/actions/ with the four personas: who sees which, proposing, deciding, cancel, undo, retry.

The world (tests/api_people.py): alice owns everything, petra is asked to
decide one approval, marta has one action assigned to her, charlie has no
access at all.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.utils import timezone
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from rest_framework.throttling import UserRateThrottle

from actions.api import actions as actions_api
from actions.api import approvals as approvals_api
from actions.executor import queue_action, run_action
from actions.models import Action, ActionStatus, AuditEntry, Priority
from actions.transitions import transition_action
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for

S = ActionStatus
URL = "/api/v1/actions/"

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Throttle counts live in the cache, which outlives a test.
    cache.clear()


def at(action: Action, change: str = "") -> str:
    return f"{URL}{action.pk}/{change + '/' if change else ''}"


def listed(user, query: str = "") -> set[int]:
    return ids(client_for(user).get(URL + query))


def status_of(action: Action) -> str:
    return Action.objects.get(pk=action.pk).status


def last_entry(action: Action, event: str) -> AuditEntry:
    return AuditEntry.objects.for_object(action).filter(event=event).latest("id")


def move(action: Action, *path: str) -> Action:
    """Walk an action through the state machine, as the workers and policies would."""
    for to in path:
        transition_action(action, to, actor="test")
    return action


@pytest.fixture
def pending(world) -> Action:
    """The approver's action, waiting for her decision."""
    return move(world.approval_action, S.PENDING_APPROVAL)


# --- Seeing -------------------------------------------------------------------------------


def test_the_owner_lists_every_action(world):
    assert listed(world.owner) == {world.member_action.pk, world.approval_action.pk, world.other_action.pk}


def test_a_member_lists_only_the_actions_assigned_to_them(world):
    assert listed(world.member) == {world.member_action.pk}


def test_an_approver_lists_the_actions_they_are_asked_to_decide(world):
    assert listed(world.approver) == {world.approval_action.pk}


def test_an_outsider_lists_nothing(world):
    assert listed(world.outsider) == set()


def test_an_anonymous_client_is_asked_to_sign_in(world):
    assert client_for(None).get(URL).status_code == 401


@pytest.mark.parametrize(
    ("persona", "action", "code"),
    [
        ("owner", "other_action", 200),
        ("member", "member_action", 200),
        ("member", "approval_action", 404),
        ("approver", "approval_action", 200),
        ("approver", "member_action", 404),
        ("outsider", "member_action", 404),
        ("outsider", "other_action", 404),
    ],
)
def test_an_action_is_shown_only_to_those_who_may_see_it(world, persona, action, code):
    assert client_for(getattr(world, persona)).get(at(getattr(world, action))).status_code == code


def test_the_detail_shows_what_the_action_does_its_email_approvals_and_what_you_may_do(world, pending):
    Action.objects.filter(pk=pending.pk).update(last_error="SMTP said no", result={"sent": False})
    body = client_for(world.approver).get(at(pending)).json()
    assert (body["type"], body["status"], body["params"]) == ("send_reply", "pending_approval", pending.params)
    assert (body["error"], body["result"], body["attempts"], body["has_undo_data"]) == (
        "SMTP said no",
        {"sent": False},
        0,
        False,
    )
    assert body["email"]["subject"] == "Needs Petra"
    [approval] = body["approvals"]
    assert (approval["id"], approval["status"], approval["you_may_decide"]) == (world.approval.pk, "pending", True)
    # Petra may decide it but not change it: only the decisions are offered.
    assert set(body["links"]) == {"self", "approve", "reject"}
    assert body["links"]["approve"].endswith(at(pending, "approve"))


def test_the_assignee_is_offered_cancel_and_not_a_decision(world):
    links = client_for(world.member).get(at(world.member_action)).json()["links"]
    assert set(links) == {"self", "cancel"}


# --- Filtering and ordering ------------------------------------------------------------------


def test_the_list_filters_by_status_type_priority_source_email_and_run(world, make_action):
    urgent = make_action("create_task", email=world.other_email, priority=Priority.URGENT)
    move(urgent, S.CANCELLED)
    owner = world.owner
    assert listed(owner, "?status=cancelled") == {urgent.pk}
    assert listed(owner, "?status=cancelled&status=proposed") == {
        urgent.pk,
        world.member_action.pk,
        world.approval_action.pk,
        world.other_action.pk,
    }
    assert listed(owner, "?type=create_task") == {urgent.pk, world.member_action.pk}
    assert listed(owner, f"?priority={Priority.URGENT}") == {urgent.pk}
    assert listed(owner, f"?email={world.other_email.pk}") == {urgent.pk, world.other_action.pk}
    assert listed(owner, "?source=api") == set()
    assert listed(owner, "?source=person&type=archive_email") == {world.other_action.pk}
    assert listed(owner, "?run=999999") == set()


def test_the_list_filters_by_assignee_and_creation_time(world):
    Action.objects.filter(pk=world.other_action.pk).update(created_at=timezone.now() - timedelta(days=3))
    assert listed(world.owner, f"?assignee={world.member_action.assignee_id}") == {world.member_action.pk}
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert listed(world.owner, f"?created_at_after={since}") == {world.member_action.pk, world.approval_action.pk}
    assert listed(world.owner, f"?created_at_before={since}") == {world.other_action.pk}


def test_filters_never_widen_what_a_person_sees(world):
    assert listed(world.member, f"?email={world.other_email.pk}") == set()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("status=exploded", "status"),
        ("priority=high", "priority"),
        ("email=1.5", "email"),
        # Past what SQLite stores: refused, not sent to the database.
        ("email=99999999999999999999", "email"),
        ("created_at_after=yesterday", "created_at"),
    ],
)
def test_a_bad_filter_value_is_refused_naming_the_filter(world, query, name):
    response = client_for(world.owner).get(f"{URL}?{query}")
    assert response.status_code == 400 and name in response.json(), response.content


def test_the_list_is_ordered_by_priority_when_asked(world, make_action):
    urgent = make_action("archive_email", email=world.other_email, priority=Priority.URGENT)
    low = make_action("archive_email", email=world.other_email, priority=Priority.LOW)
    rows = client_for(world.owner).get(URL + "?ordering=-priority").json()["results"]
    assert rows[0]["id"] == urgent.pk and rows[-1]["id"] == low.pk


def test_a_list_costs_the_same_queries_whatever_the_page_size(world, make_email):
    emails = [make_email() for _ in range(5)]
    Action.objects.bulk_create(
        Action(
            type="create_task",
            email=emails[n % 5],
            assignee=world.member_action.assignee,
            created_by=world.owner,
            params={"title": f"Task {n}"},
            idempotency_key=f"bulk-{n}",
        )
        for n in range(110)
    )
    for user in (world.owner, world.member):
        assert_constant_queries(client_for(user), URL)


# --- Proposing -------------------------------------------------------------------------------


@pytest.fixture
def proposer(world):
    """Marta, allowed to propose actions."""
    world.member.user_permissions.add(Permission.objects.get(codename="add_action"))
    return client_for(world.member)


def test_the_owner_proposes_an_action_and_it_is_audited_as_theirs(world):
    response = client_for(world.owner).post(
        URL,
        {
            "type": "forward_email",
            "email": world.other_email.pk,
            "params": {"to": ["colleague@acme.example"]},
            "priority": Priority.HIGH,
            "confidence": 0.75,
        },
    )
    assert response.status_code == 201, response.content
    action = Action.objects.get(pk=response.json()["id"])
    assert (action.status, action.source, action.priority, action.created_by) == (
        S.PROPOSED,
        "api",
        Priority.HIGH,
        world.owner,
    )
    assert last_entry(action, "action.proposed").actor == world.owner


def test_parameters_are_checked_for_the_type_naming_each_field(world):
    response = client_for(world.owner).post(
        URL, {"type": "schedule_meeting", "email": world.other_email.pk, "params": {"title": "Review"}}
    )
    assert response.status_code == 400
    problems = response.json()["params"]
    assert {"start", "attendees"} <= set(problems), problems
    assert Action.objects.count() == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "launch_rocket"}, "type"),
        ({"confidence": 1.5}, "confidence"),
        ({"priority": 99}, "priority"),
        ({"params": ["not", "an", "object"]}, "params"),
        ({"email": 999999}, "email"),
        # PostgreSQL's jsonb cannot hold it.
        ({"params": {"note": "a\x00b"}}, "params"),
    ],
)
def test_a_bad_proposal_is_refused_naming_the_field(world, change, field):
    proposal = {"type": "archive_email", "email": world.other_email.pk, "params": {}, **change}
    response = client_for(world.owner).post(URL, proposal)
    assert response.status_code == 400 and field in response.json(), response.content


def test_an_email_the_proposer_may_not_see_does_not_exist_for_them(world, proposer):
    response = proposer.post(URL, {"type": "archive_email", "email": world.other_email.pk})
    assert response.status_code == 400 and "email" in response.json()
    assert proposer.post(URL, {"type": "archive_email", "email": world.member_email.pk}).status_code == 201


def test_the_limit_of_actions_per_email_is_reported_on_the_email(world, settings):
    settings.MAX_ACTIONS_PER_EMAIL = 1
    response = client_for(world.owner).post(URL, {"type": "archive_email", "email": world.other_email.pk})
    assert response.status_code == 400 and "already has 1 actions" in response.json()["email"][0]


def test_proposing_again_with_the_same_key_returns_the_first_action(world):
    proposal = {"type": "archive_email", "email": world.other_email.pk, "idempotency_key": "webhook-42"}
    first = client_for(world.owner).post(URL, proposal)
    again = client_for(world.owner).post(URL, proposal)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


def test_a_key_someone_else_used_is_not_disclosed(world, proposer):
    client_for(world.owner).post(URL, {"type": "archive_email", "idempotency_key": "owner-only"})
    response = proposer.post(URL, {"type": "archive_email", "idempotency_key": "owner-only"})
    assert response.status_code == 400 and "idempotency_key" in response.json()


@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
def test_proposing_needs_the_permission(world, persona):
    response = client_for(getattr(world, persona)).post(URL, {"type": "archive_email"})
    assert response.status_code == 403
    assert Action.objects.count() == 3


# --- Cancelling, undoing, retrying -----------------------------------------------------------


def test_the_assignee_cancels_their_action_and_the_trail_names_them(world):
    response = client_for(world.member).post(at(world.member_action, "cancel"), {"reason": "Customer called"})
    assert response.status_code == 200 and response.json()["status"] == S.CANCELLED
    entry = last_entry(world.member_action, "action.cancelled")
    assert (entry.actor, entry.details["reason"]) == (world.member, "Customer called")


def test_cancelling_what_is_already_cancelled_is_a_conflict_with_the_reason(world):
    move(world.other_action, S.CANCELLED)
    response = client_for(world.owner).post(at(world.other_action, "cancel"))
    assert response.status_code == 409
    assert "cannot go from 'cancelled' to 'cancelled'" in response.json()["detail"]


@pytest.mark.parametrize("change", ["cancel", "undo", "retry"])
def test_an_approver_sees_the_action_but_may_not_change_it(world, pending, change):
    assert client_for(world.approver).post(at(pending, change)).status_code == 403
    assert status_of(pending) == S.PENDING_APPROVAL


@pytest.mark.parametrize("change", ["cancel", "undo", "retry"])
@pytest.mark.parametrize("persona", ["member", "outsider"])
@pytest.mark.security
def test_nobody_changes_an_action_they_may_not_see(world, persona, change):
    assert client_for(getattr(world, persona)).post(at(world.other_action, change)).status_code == 404
    assert status_of(world.other_action) == S.PROPOSED


def test_the_assignee_undoes_a_task_that_was_created(world):
    action = world.member_action
    # Named, so running it keeps the task (and the action) hers.
    Action.objects.filter(pk=action.pk).update(params={**action.params, "assignee": world.member.email})
    action.refresh_from_db()
    queue_action(action, actor="test")
    assert run_action(action.pk) and status_of(action) == S.SUCCEEDED
    shown = client_for(world.member).get(at(action)).json()
    assert shown["has_undo_data"] is True and set(shown["links"]) == {"self", "undo"}
    response = client_for(world.member).post(at(action, "undo"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == status_of(action) == S.UNDONE
    assert last_entry(action, "action.undo_done").actor == world.member


def test_undoing_what_has_not_run_is_a_conflict_with_the_reason(world):
    response = client_for(world.owner).post(at(world.other_action, "undo"))
    assert response.status_code == 409 and "only a succeeded action can be undone" in response.json()["detail"]
    assert status_of(world.other_action) == S.PROPOSED


def test_a_dead_action_is_retried_with_fresh_attempts(world):
    action = move(world.member_action, S.QUEUED, S.RUNNING, S.DEAD)
    Action.objects.filter(pk=action.pk).update(attempts=5)
    response = client_for(world.member).post(at(action, "retry"))
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == (S.QUEUED, 0)
    assert last_entry(action, "action.queued").actor == world.member


def test_retrying_an_action_that_did_not_fail_is_a_conflict(world):
    # Retrying would queue it, and a proposal must not skip its approval that way.
    response = client_for(world.owner).post(at(world.other_action, "retry"))
    assert response.status_code == 409 and "only failed or dead" in response.json()["detail"]
    assert status_of(world.other_action) == S.PROPOSED


# --- Throttling and the schema ----------------------------------------------------------------


@pytest.mark.security
def test_a_client_over_its_rate_is_told_when_to_come_back(world, monkeypatch):
    # DRF reads the rates once, when the throttle class is defined: set them there.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    client = client_for(world.member)
    assert [client.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(URL)
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


def test_the_schema_of_actions_and_approvals_is_complete_and_valid(capsys):
    from django.urls import include, path

    patterns = [path("api/v1/", include((actions_api.urlpatterns + approvals_api.urlpatterns, "api")))]
    GENERATOR_STATS.reset()
    schema = SchemaGenerator(patterns=patterns).get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, capsys.readouterr().err
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert ("/api/v1/actions/{id}/approve/", "post") in operations
    assert ("/api/v1/approvals/{id}/decide/", "post") in operations
