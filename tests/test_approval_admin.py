"""Deciding approvals in the admin: the list's bulk actions, the page's buttons, the votes, and who may do it.

The approvals come the real way: the hand-made team of tests/team_data.py,
a forward to an outside address proposed and routed, and the policy
"Forwarding outside the company" (migration approvals/0003) asking the
leads, Aiko and Priya. bob is staff with the admin's approval permissions
but was never asked to decide anything.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from actions.models import Action, ActionStatus, AuditEntry
from actions.proposals import propose_action
from approvals.decisions import decide
from approvals.models import Approval, ApprovalStatus, ApprovalVote
from approvals.routing import route_action
from teams.directory import import_directory
from teams.models import TeamMember
from tests.conftest import SAMPLE_PARAMS
from tests.team_data import TEAM

ADMIN_PERMISSIONS = ("view_approval", "change_approval")
LIST = reverse("admin:approvals_approval_changelist")


def page(approval: Approval) -> str:
    return reverse("admin:approvals_approval_change", args=[approval.pk])


def decide_url(approval: Approval) -> str:
    return reverse("admin:approvals_approval_decide", args=[approval.pk])


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.SEND_DELAY_SECONDS = 0


def give_admin_access(user, codenames=ADMIN_PERMISSIONS) -> None:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="approvals", codename__in=codenames))


@pytest.fixture
def team(db) -> dict[str, TeamMember]:
    import_directory({"members": TEAM})
    members = {m.user.first_name.lower(): m for m in TeamMember.objects.select_related("user")}
    for lead in ("aiko", "priya"):
        give_admin_access(members[lead].user)
    return members


@pytest.fixture
def aiko(team):
    return team["aiko"].user


@pytest.fixture
def priya(team):
    return team["priya"].user


@pytest.fixture
def forward_outside(team, make_email):
    """Propose and route a forward to an outside address: it waits for a lead. Returns its pending approval."""

    def make() -> Approval:
        params = {**SAMPLE_PARAMS["forward_email"], "to": ["partner@outside.example"]}
        action = propose_action("forward_email", email=make_email(), params=params)
        route_action(action)
        return Approval.objects.get(action=action, status=ApprovalStatus.PENDING)

    return make


def status_of(approval: Approval) -> tuple[str, str]:
    """The approval's status and its action's, from the database."""
    approval.refresh_from_db()
    return approval.status, Action.objects.get(pk=approval.action_id).status


def shown(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def bulk(client, action: str, approvals: list[Approval], comment: str = ""):
    form = {"action": action, "_selected_action": [a.pk for a in approvals], "comment": comment, "index": 0}
    return client.post(LIST, form, follow=True)


# --- The list's bulk actions -----------------------------------------------------------------


def test_bulk_approve_with_a_comment_queues_the_actions_and_audits_the_votes(client, aiko, forward_outside):
    first, second = forward_outside(), forward_outside()
    client.force_login(aiko)
    response = bulk(client, "approve_selected", [first, second], comment="Fine, they are our auditors")
    for approval in (first, second):
        assert status_of(approval) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
        vote = ApprovalVote.objects.get(approval=approval)
        assert (vote.voter, vote.decision, vote.comment, vote.via) == (
            aiko,
            "approve",
            "Fine, they are our auditors",
            "admin",
        )
        entry = AuditEntry.objects.for_object(approval).get(event="approval.approve_vote")
        assert (entry.actor, entry.details) == (aiko, {"comment": "Fine, they are our auditors", "via": "admin"})
        assert approval.decided_by == aiko
    assert "Approved 2 approvals; their actions are queued." in shown(response)


def test_bulk_reject_rejects_the_actions(client, priya, forward_outside):
    first, second = forward_outside(), forward_outside()
    client.force_login(priya)
    response = bulk(client, "reject_selected", [first, second], comment="Not to that address")
    for approval in (first, second):
        assert status_of(approval) == (ApprovalStatus.REJECTED, ActionStatus.REJECTED)
        assert approval.comment == "Not to that address"
    assert "Rejected 2 approvals." in shown(response)


def test_bulk_deciding_reports_each_refusal_and_decides_the_rest(client, aiko, priya, forward_outside):
    open_one, decided = forward_outside(), forward_outside()
    decide(decided, priya, "reject", comment="No")
    client.force_login(aiko)
    response = bulk(client, "approve_selected", [open_one, decided])
    assert status_of(open_one) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
    assert status_of(decided) == (ApprovalStatus.REJECTED, ActionStatus.REJECTED)
    assert not ApprovalVote.objects.filter(approval=decided, voter=aiko).exists()
    messages = shown(response)
    assert "Approved 1 approval; its action is queued." in messages
    assert f"{decided}: This approval was already rejected." in messages


def test_the_action_bar_has_the_decisions_and_a_comment(client, aiko, forward_outside):
    forward_outside()
    client.force_login(aiko)
    response = client.get(LIST)
    choices = dict(response.context["action_form"].fields["action"].choices)
    assert (choices.get("approve_selected"), choices.get("reject_selected")) == ("Approve selected", "Reject selected")
    assert "delete_selected" not in choices
    assert 'name="comment"' in response.content.decode()


# --- Who may decide ----------------------------------------------------------------------------


def test_a_staff_user_not_asked_neither_sees_nor_decides_the_approval(client, bob, team, forward_outside):
    give_admin_access(bob)
    approval = forward_outside()
    client.force_login(bob)
    assert list(client.get(LIST).context["cl"].result_list) == []
    assert client.get(page(approval)).status_code == 302  # "not found", as for any approval not his
    bulk(client, "approve_selected", [approval], comment="let me")
    response = client.post(decide_url(approval), {"decision": "approve", "comment": "let me"}, follow=True)
    assert f"There is no approval with ID “{approval.pk}” for you." in shown(response)
    assert status_of(approval) == (ApprovalStatus.PENDING, ActionStatus.PENDING_APPROVAL)
    assert not ApprovalVote.objects.exists()


def test_an_approver_who_may_only_view_approvals_in_the_admin_is_not_offered_deciding(client, priya, forward_outside):
    priya.user_permissions.remove(Permission.objects.get(codename="change_approval"))
    approval = forward_outside()
    client.force_login(priya)
    response = client.get(LIST)
    assert [a.pk for a in response.context["cl"].result_list] == [approval.pk]
    assert "approve_selected" not in response.content.decode()
    assert client.get(page(approval)).context["can_decide"] is False
    assert client.post(decide_url(approval), {"decision": "approve"}).status_code == 403
    bulk(client, "approve_selected", [approval])
    assert status_of(approval) == (ApprovalStatus.PENDING, ActionStatus.PENDING_APPROVAL)
    # She still sees it: only deciding in the admin asks for the change permission.
    assert client.get(page(approval)).status_code == 200


# --- The approval's page ----------------------------------------------------------------------


def test_the_approve_button_on_the_page_approves_with_the_comment(client, aiko, forward_outside):
    approval = forward_outside()
    client.force_login(aiko)
    form = client.get(page(approval)).content.decode()
    assert f'action="{decide_url(approval)}"' in form
    assert 'name="decision" value="approve"' in form
    assert 'name="decision" value="reject"' in form
    response = client.post(decide_url(approval), {"decision": "approve", "comment": "Go ahead"})
    assert (response.status_code, response.url) == (302, page(approval))
    assert status_of(approval) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
    vote = ApprovalVote.objects.get(approval=approval)
    assert (vote.voter, vote.decision, vote.comment, vote.via) == (aiko, "approve", "Go ahead", "admin")
    after = client.get(page(approval))
    assert "Approved 1 approval; its action is queued." in shown(after)
    assert after.context["can_decide"] is False
    assert 'name="decision"' not in after.content.decode()


def test_the_reject_button_on_the_page_rejects(client, priya, forward_outside):
    approval = forward_outside()
    client.force_login(priya)
    response = client.post(decide_url(approval), {"decision": "reject", "comment": "Wrong recipient"}, follow=True)
    assert status_of(approval) == (ApprovalStatus.REJECTED, ActionStatus.REJECTED)
    assert "Rejected 1 approval." in shown(response)


def test_deciding_twice_on_the_page_is_refused(client, aiko, priya, forward_outside):
    approval = forward_outside()
    client.force_login(aiko)
    client.post(decide_url(approval), {"decision": "approve"})
    response = client.post(decide_url(approval), {"decision": "reject", "comment": "changed my mind"}, follow=True)
    assert "This approval was already approved." in " ".join(shown(response))
    assert status_of(approval) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
    assert ApprovalVote.objects.filter(approval=approval).count() == 1


def test_a_made_up_decision_is_refused(client, aiko, forward_outside):
    approval = forward_outside()
    client.force_login(aiko)
    response = client.post(decide_url(approval), {"decision": "approve_everything"}, follow=True)
    assert any("is not a decision" in message for message in shown(response))
    assert status_of(approval) == (ApprovalStatus.PENDING, ActionStatus.PENDING_APPROVAL)


def test_opening_the_decide_address_changes_nothing(client, aiko, forward_outside):
    approval = forward_outside()
    client.force_login(aiko)
    assert client.get(decide_url(approval), {"decision": "approve"}).status_code == 405
    assert status_of(approval) == (ApprovalStatus.PENDING, ActionStatus.PENDING_APPROVAL)


def test_a_decided_approval_shows_its_votes(client, aiko, priya, forward_outside):
    approval = forward_outside()
    decide(approval, priya, "reject", comment="They are not a customer", via="email")
    client.force_login(aiko)
    response = client.get(page(approval))
    (formset,) = [f for f in response.context["inline_admin_formsets"] if f.opts.model is ApprovalVote]
    assert [(v.voter, v.decision, v.comment, v.via) for v in formset.formset.queryset] == [
        (priya, "reject", "They are not a customer", "email")
    ]
    html = response.content.decode()
    assert "They are not a customer" in html
    assert "Reject" in html
    assert response.context["can_decide"] is False


# --- The list stays cheap ---------------------------------------------------------------------


def test_the_list_marks_what_is_yours_to_decide(client, aiko, priya, forward_outside):
    voted, rejected, waiting = forward_outside(), forward_outside(), forward_outside()
    # Two approvals needed, so Aiko's vote leaves it pending, but no longer hers to decide.
    Approval.objects.filter(pk=voted.pk).update(approvals_required=2)
    decide(voted, aiko, "approve")
    decide(rejected, priya, "reject")
    client.force_login(aiko)
    rows = client.get(LIST).context["cl"].result_list
    assert {row.pk: row.yours_to_decide for row in rows} == {voted.pk: False, rejected.pk: False, waiting.pk: True}


def test_the_list_queries_do_not_grow_with_the_rows(client, aiko, forward_outside, django_assert_num_queries):
    for _ in range(2):
        forward_outside()
    client.force_login(aiko)
    client.get(LIST)  # Warm the caches (content types...), so both measured requests start alike.
    with CaptureQueriesContext(connection) as few:
        assert client.get(LIST).status_code == 200
    for _ in range(28):
        forward_outside()
    with django_assert_num_queries(len(few)):
        response = client.get(LIST)
    rows = response.context["cl"].result_list
    assert len(rows) == 30
    assert all(row.yours_to_decide for row in rows)
