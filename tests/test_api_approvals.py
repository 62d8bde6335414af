"""/api/v1/approvals/ with the four personas: the approver sees only hers, and decides through decide().

The world (tests/api_people.py): alice owns everything, petra is asked to
decide one approval, marta has one action assigned to her, charlie has no
access at all.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.utils import timezone
from guardian.shortcuts import assign_perm

from actions.models import Action, ActionStatus, AuditEntry
from actions.transitions import transition_action
from approvals.decisions import PERMISSION
from approvals.models import Approval, ApprovalStatus, ApprovalVote
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for

URL = "/api/v1/approvals/"

pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Throttle counts live in the cache, which outlives a test.
    cache.clear()


def at(approval: Approval, change: str = "") -> str:
    return f"{URL}{approval.pk}/{change + '/' if change else ''}"


def listed(user, query: str = "") -> set[int]:
    return ids(client_for(user).get(URL + query))


def later(days: int = 2):
    return timezone.now() + timedelta(days=days)


@pytest.fixture
def pending(world) -> Approval:
    """Petra's approval, its action waiting for her as a policy would leave it."""
    transition_action(world.approval_action, ActionStatus.PENDING_APPROVAL, actor="test")
    return world.approval


@pytest.fixture
def someone_elses(world) -> Approval:
    """An approval of the member's action that petra was not asked to decide."""
    return Approval.objects.create(action=world.member_action, level=2, expires_at=later())


@pytest.fixture
def auditor(db):
    """Olga may see every approval (the view permission) but was asked to decide none."""
    olga = get_user_model().objects.create_user("olga", "olga@acme.example", "olga-password")
    olga.user_permissions.add(Permission.objects.get(codename="view_approval"))
    return olga


def decide(user, approval: Approval, decision: str = "approve", **extra):
    return client_for(user).post(at(approval, "decide"), {"decision": decision, **extra})


# --- Seeing -------------------------------------------------------------------------------


def test_the_owner_lists_every_approval(world, someone_elses):
    assert listed(world.owner) == {world.approval.pk, someone_elses.pk}


def test_the_approver_lists_only_the_approvals_she_is_asked_to_decide(world, someone_elses):
    assert listed(world.approver) == {world.approval.pk}


@pytest.mark.parametrize("persona", ["member", "outsider"])
def test_members_and_outsiders_list_no_approvals(world, someone_elses, persona):
    assert listed(getattr(world, persona)) == set()


@pytest.mark.parametrize(("persona", "code"), [("owner", 200), ("approver", 200), ("member", 404), ("outsider", 404)])
def test_an_approval_is_shown_only_to_those_who_may_see_it(world, persona, code):
    assert client_for(getattr(world, persona)).get(at(world.approval)).status_code == code


def test_the_approver_does_not_see_an_approval_she_was_not_asked_to_decide(world, someone_elses):
    assert client_for(world.approver).get(at(someone_elses)).status_code == 404


def test_the_right_to_decide_one_approval_shows_it_and_its_action_and_nothing_else(world, someone_elses):
    assign_perm(PERMISSION, world.outsider, world.approval)
    assert listed(world.outsider) == {world.approval.pk}
    assert ids(client_for(world.outsider).get("/api/v1/actions/")) == {world.approval_action.pk}


def test_the_detail_shows_the_action_and_every_vote(world, pending, auditor):
    Approval.objects.filter(pk=pending.pk).update(approvals_required=2)
    ApprovalVote.objects.create(approval=pending, voter=world.owner, decision="approve", comment="Yes", via="admin")
    body = client_for(world.approver).get(at(pending)).json()
    assert (body["status"], body["level"], body["approvals_required"], body["votes"]) == ("pending", 1, 2, 1)
    assert (body["action"]["id"], body["action"]["status"]) == (world.approval_action.pk, "pending_approval")
    [vote] = body["votes_cast"]
    assert (vote["voter"], vote["decision"], vote["comment"], vote["via"]) == ("alice", "approve", "Yes", "admin")
    assert body["you_may_decide"] is True
    # Olga sees it but was not asked: she is told she may not decide it.
    assert client_for(auditor).get(at(pending)).json()["you_may_decide"] is False


def test_the_list_filters_by_status_level_and_action(world, someone_elses):
    Approval.objects.filter(pk=someone_elses.pk).update(status=ApprovalStatus.EXPIRED)
    owner = world.owner
    assert listed(owner, "?status=pending") == {world.approval.pk}
    assert listed(owner, "?status=pending&status=expired") == {world.approval.pk, someone_elses.pk}
    assert listed(owner, "?level=2") == {someone_elses.pk}
    assert listed(owner, f"?action={world.member_action.pk}") == {someone_elses.pk}


@pytest.mark.parametrize(
    ("query", "name"), [("level=first", "level"), ("level=99999", "level"), ("action=99999999999999999999", "action")]
)
def test_a_bad_filter_value_is_refused_naming_the_filter(world, query, name):
    response = client_for(world.owner).get(f"{URL}?{query}")
    assert response.status_code == 400 and name in response.json(), response.content


def test_a_list_costs_the_same_queries_whatever_the_page_size(world, auditor):
    made = Approval.objects.bulk_create(
        Approval(action=world.approval_action, level=1 + n % 3, expires_at=later()) for n in range(110)
    )
    assign_perm(PERMISSION, world.approver, Approval.objects.filter(pk__in=[a.pk for a in made]))
    for approval in made[:5]:
        ApprovalVote.objects.create(approval=approval, voter=world.owner, decision="approve", via="admin")
    for user in (world.owner, world.approver, auditor):
        assert_constant_queries(client_for(user), URL)


def test_the_list_says_which_approvals_the_approver_may_decide_now(world, pending, someone_elses):
    decided = Approval.objects.create(action=world.approval_action, status=ApprovalStatus.APPROVED, expires_at=later())
    assign_perm(PERMISSION, world.approver, decided)
    rows = client_for(world.approver).get(URL).json()["results"]
    assert {row["id"]: row["you_may_decide"] for row in rows} == {pending.pk: True, decided.pk: False}


# --- Deciding ----------------------------------------------------------------------------------


def test_the_approver_approves_and_the_action_is_queued(world, pending):
    response = decide(world.approver, pending, comment="Go ahead")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["decided_by"], body["comment"], body["you_may_decide"]) == (
        "approved",
        "petra",
        "Go ahead",
        False,
    )
    assert [(vote["voter"], vote["via"]) for vote in body["votes_cast"]] == [("petra", "api")]
    assert Action.objects.get(pk=world.approval_action.pk).status == ActionStatus.QUEUED
    entry = AuditEntry.objects.for_object(pending).get(event="approval.approve_vote")
    assert (entry.actor, entry.details["via"]) == (world.approver, "api")


def test_the_approver_rejects_and_the_action_is_rejected(world, pending):
    assert decide(world.approver, pending, "reject", comment="Not this time").status_code == 200
    assert Approval.objects.get(pk=pending.pk).status == ApprovalStatus.REJECTED
    assert Action.objects.get(pk=world.approval_action.pk).status == ActionStatus.REJECTED
    assert AuditEntry.objects.for_object(world.approval_action).get(event="action.rejected").actor == world.approver


@pytest.mark.parametrize(("data", "field"), [({"decision": "maybe"}, "decision"), ({}, "decision")])
def test_a_decision_that_is_not_approve_or_reject_is_refused_naming_it(world, pending, data, field):
    response = client_for(world.approver).post(at(pending, "decide"), data)
    assert response.status_code == 400 and field in response.json()
    assert Approval.objects.get(pk=pending.pk).status == ApprovalStatus.PENDING


def test_deciding_what_is_already_decided_is_a_conflict(world, pending):
    assert decide(world.approver, pending).status_code == 200
    response = decide(world.owner, pending, "reject")
    assert response.status_code == 409 and "already approved" in response.json()["detail"]


def test_voting_twice_is_a_conflict(world, pending):
    Approval.objects.filter(pk=pending.pk).update(approvals_required=2)
    assert decide(world.approver, pending).status_code == 200
    response = decide(world.approver, pending)
    assert response.status_code == 409 and "already decided" in response.json()["detail"]
    assert pending.votes.count() == 1


def test_seeing_an_approval_is_not_being_asked_to_decide_it(world, pending, auditor):
    assert decide(auditor, pending).status_code == 403
    assert Approval.objects.get(pk=pending.pk).status == ApprovalStatus.PENDING


@pytest.mark.parametrize("persona", ["member", "outsider"])
@pytest.mark.security
def test_those_who_may_not_see_an_approval_cannot_decide_it(world, pending, persona):
    assert decide(getattr(world, persona), pending).status_code == 404
    assert not pending.votes.exists()


# --- Deciding through the action: /actions/{id}/approve/ and /reject/ -------------------------


def on_action(action: Action, change: str) -> str:
    return f"/api/v1/actions/{action.pk}/{change}/"


def status_of(action: Action) -> str:
    return Action.objects.get(pk=action.pk).status


def test_the_approver_approves_through_the_action_and_it_is_queued(world, pending):
    response = client_for(world.approver).post(on_action(world.approval_action, "approve"), {"comment": "Fine by me"})
    assert response.status_code == 200, response.content
    assert response.json()["status"] == status_of(world.approval_action) == ActionStatus.QUEUED
    assert Approval.objects.get(pk=pending.pk).status == ApprovalStatus.APPROVED
    assert AuditEntry.objects.for_object(world.approval_action).get(event="action.approved").actor == world.approver
    vote = AuditEntry.objects.for_object(pending).get(event="approval.approve_vote")
    assert (vote.actor, vote.details) == (world.approver, {"comment": "Fine by me", "via": "api"})


def test_the_approver_rejects_through_the_action(world, pending):
    assert client_for(world.approver).post(on_action(world.approval_action, "reject")).status_code == 200
    assert status_of(world.approval_action) == ActionStatus.REJECTED
    assert AuditEntry.objects.for_object(world.approval_action).get(event="action.rejected").actor == world.approver


def test_the_owner_may_decide_any_approval_through_its_action(world, pending):
    assert client_for(world.owner).post(on_action(world.approval_action, "approve")).status_code == 200
    assert status_of(world.approval_action) == ActionStatus.QUEUED


def test_a_member_may_not_decide_an_approval_of_their_own_action(world, someone_elses):
    transition_action(world.member_action, ActionStatus.PENDING_APPROVAL, actor="test")
    response = client_for(world.member).post(on_action(world.member_action, "approve"))
    assert response.status_code == 403
    assert status_of(world.member_action) == ActionStatus.PENDING_APPROVAL


@pytest.mark.parametrize("persona", ["member", "outsider"])
@pytest.mark.security
def test_those_who_may_not_see_the_action_cannot_decide_it(world, pending, persona):
    assert client_for(getattr(world, persona)).post(on_action(world.approval_action, "approve")).status_code == 404
    assert status_of(world.approval_action) == ActionStatus.PENDING_APPROVAL


def test_deciding_an_action_with_nothing_pending_is_a_conflict(world, pending):
    approver = client_for(world.approver)
    assert approver.post(on_action(world.approval_action, "approve")).status_code == 200
    again = approver.post(on_action(world.approval_action, "reject"))
    assert again.status_code == 409 and "no approval waiting" in again.json()["detail"]
    assert client_for(world.owner).post(on_action(world.other_action, "approve")).status_code == 409


def test_voting_twice_through_the_action_is_a_conflict(world, pending):
    Approval.objects.filter(pk=pending.pk).update(approvals_required=2)
    approver = client_for(world.approver)
    assert approver.post(on_action(world.approval_action, "approve")).status_code == 200
    again = approver.post(on_action(world.approval_action, "approve"))
    assert again.status_code == 409 and "already decided" in again.json()["detail"]


def test_a_comment_that_is_not_text_is_refused_naming_it(world, pending):
    response = client_for(world.approver).post(on_action(world.approval_action, "approve"), {"comment": {"no": 1}})
    assert response.status_code == 400 and "comment" in response.json()
