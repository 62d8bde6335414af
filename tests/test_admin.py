"""The admin, Mailroom's main screen: every page renders, lists stay cheap, and nothing bypasses the services."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from guardian.models import GroupObjectPermission, UserObjectPermission
from guardian.shortcuts import assign_perm

from actions.audit import record_audit
from actions.models import (
    Action,
    ActionStatus,
    Attachment,
    AuditEntry,
    Email,
    ProcessingRun,
    RunStatus,
    RunStep,
    StepName,
)
from actions.proposals import propose_action
from actions.transitions import transition_action
from approvals.models import (
    Approval,
    ApprovalGroupObjectPermission,
    ApprovalPolicy,
    ApprovalStatus,
    ApprovalUserObjectPermission,
    Condition,
)
from integrations.models import LocalTask, TaskStatus
from teams.directory import import_directory
from teams.models import Role, TeamMember
from tests.conftest import SAMPLE_PARAMS
from tests.team_data import TEAM

MAILROOM_MODELS = [
    Email,
    Attachment,
    Action,
    ProcessingRun,
    RunStep,
    AuditEntry,
    TeamMember,
    ApprovalPolicy,
    Approval,
    LocalTask,
]


def _label(model) -> str:
    return model._meta.label


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


class Rows:
    """Makes rows of each registered model, each with the related rows its admin pages show."""

    def __init__(self, make_email, make_action, acting_user) -> None:
        self._make_email = make_email
        self._make_action = make_action
        self._user = acting_user
        self._n = itertools.count(1)

    def make(self, model, count: int) -> list:
        maker = getattr(self, model._meta.model_name)
        return [maker() for _ in range(count)]

    def user(self, **fields):
        n = next(self._n)
        return get_user_model().objects.create_user(f"person{n}", f"person{n}@acme.example", **fields)

    def email(self, **fields) -> Email:
        email = self._make_email(**fields)
        for kind in ("pdf", "png"):
            Attachment.objects.create(email=email, filename=f"file-{email.pk}.{kind}", content_type=f"x/{kind}", size=9)
        return email

    def attachment(self, **fields) -> Attachment:
        return Attachment.objects.create(email=self._make_email(), **{"filename": "notes.txt", "size": 3, **fields})

    def processingrun(self, steps=StepName.values, email: Email | None = None, **fields) -> ProcessingRun:
        run = ProcessingRun.objects.create(email=email or self._make_email(), **fields)
        for name in steps:
            RunStep.objects.create(run=run, name=name, status=RunStatus.SUCCEEDED, log=[f"{name} done"])
        return run

    def runstep(self, run: ProcessingRun | None = None, **fields) -> RunStep:
        return RunStep.objects.create(run=run or self.processingrun(steps=[]), **{"name": StepName.INTAKE, **fields})

    def action(self, type: str = "send_reply", email: Email | None = None, **kwargs) -> Action:
        run = self.processingrun(email=email or self._make_email())
        default = {"body": "Thanks, on it.", "cc": ["customer@customer.example"]}
        kwargs.setdefault("params", default if type == "send_reply" else SAMPLE_PARAMS[type])
        return self._make_action(type, email=run.email, run=run, acting_user=self._user, **kwargs)

    def auditentry(self, event: str = "action.noted", target=None) -> AuditEntry:
        # Vary the target's type, so the list links to several kinds of object.
        if target is None:
            target = [self.action, self._make_email, self.processingrun, self.teammember][next(self._n) % 4]()
        return record_audit(event, target=target, acting_user=self._user, details={"note": "looked at it"})

    def teammember(self, user=None, **fields) -> TeamMember:
        manager = TeamMember.objects.create(user=self.user(first_name="Mara", last_name="Boss"), role=Role.MANAGER)
        return TeamMember.objects.create(user=user or self.user(), manager=manager, **fields)

    def localtask(self, **fields) -> LocalTask:
        defaults = {"title": "Call the customer back", "assignee": self.teammember(), "email": self._make_email()}
        return LocalTask.objects.create(**{**defaults, **fields})

    def approvalpolicy(self, **fields) -> ApprovalPolicy:
        group = Group.objects.create(name=f"approvers {next(self._n)}")
        return ApprovalPolicy.objects.create(**{"name": f"policy {next(self._n)}", "approver_group": group, **fields})

    def approval(self, action: Action | None = None, **fields) -> Approval:
        now = timezone.now()
        defaults = {
            "status": ApprovalStatus.APPROVED,
            "decided_by": self.user(),
            "decided_at": now,
            "expires_at": now + timedelta(days=1),
            "policy": self.approvalpolicy(),
        }
        return Approval.objects.create(action=action or self.action(), **{**defaults, **fields})


@pytest.fixture
def rows(make_email, make_action, alice) -> Rows:
    return Rows(make_email, make_action, alice)


def _give(user, *perms: str) -> None:
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


# Registration


def test_every_mailroom_model_is_registered_with_filters_and_search():
    for model in MAILROOM_MODELS:
        model_admin = admin.site._registry[model]
        assert model_admin.list_filter, f"{_label(model)} has no list filters"
        assert model_admin.search_fields, f"{_label(model)} has no search"


def test_the_object_permission_tables_are_not_in_the_admin():
    # Whoever could edit these could grant themselves the right to decide any approval.
    for model in (
        ApprovalUserObjectPermission,
        ApprovalGroupObjectPermission,
        UserObjectPermission,
        GroupObjectPermission,
    ):
        assert not admin.site.is_registered(model), f"{_label(model)} is editable in the admin"


def test_approvals_have_no_object_permissions_page(client, alice, rows):
    approval = rows.approval()
    url_names = {pattern.name for pattern in admin.site._registry[Approval].urls}
    assert not any("permission" in (name or "") for name in url_names)
    with pytest.raises(NoReverseMatch):
        reverse("admin:approvals_approval_permissions", args=[approval.pk])
    client.force_login(alice)
    response = client.get(f"{_url(Approval, 'change', approval.pk)}permissions/", follow=True)
    assert b"Object permissions" not in response.content
    assert b"user_permissions" not in response.content


def test_the_index_names_each_part_readably(client, alice):
    client.force_login(alice)
    page = client.get(reverse("admin:index")).content.decode()
    for name in (
        "Mail and actions",
        "Processing runs",
        "Run steps",
        "Audit entries",
        "Team members",
        "Approval policies",
    ):
        assert name in page


# Every page renders


@pytest.mark.parametrize("model", MAILROOM_MODELS, ids=_label)
def test_each_list_and_change_page_renders(client, alice, rows, model):
    obj = rows.make(model, 1)[0]
    client.force_login(alice)
    assert client.get(_url(model, "changelist")).status_code == 200
    assert client.get(_url(model, "change", obj.pk)).status_code == 200


# For each list: a filter that, like searching "zebra", finds only the row made by the function next to it.
SEARCHES = {
    Email: ({"status__exact": "quarantined"}, lambda rows: rows.email(subject="Zebra", status="quarantined")),
    Attachment: (
        {"content_type": "application/pdf"},
        lambda rows: rows.attachment(filename="zebra.pdf", content_type="application/pdf"),
    ),
    Action: ({"type__exact": "create_task"}, lambda rows: rows.action("create_task", rationale="Zebra sighted")),
    ProcessingRun: (
        {"status__exact": "failed"},
        lambda rows: rows.processingrun(email=rows.email(subject="Zebra"), status=RunStatus.FAILED),
    ),
    RunStep: (
        {"name__exact": "analyse"},
        lambda rows: rows.runstep(run=rows.processingrun(steps=[], email=rows.email(subject="Zebra")), name="analyse"),
    ),
    AuditEntry: ({"event": "action.zebra"}, lambda rows: rows.auditentry(event="action.zebra")),
    TeamMember: (
        {"role__exact": "lead"},
        lambda rows: rows.teammember(role=Role.LEAD, user=rows.user(last_name="Zebra")),
    ),
    ApprovalPolicy: (
        {"condition__exact": "unknown_sender"},
        lambda rows: rows.approvalpolicy(name="Zebra", condition=Condition.UNKNOWN_SENDER),
    ),
    Approval: (
        {"status__exact": "rejected"},
        lambda rows: rows.approval(comment="zebra", status=ApprovalStatus.REJECTED),
    ),
    LocalTask: ({"status__exact": "done"}, lambda rows: rows.localtask(title="Zebra crossing", status=TaskStatus.DONE)),
}


@pytest.mark.parametrize("model", MAILROOM_MODELS, ids=_label)
def test_each_list_searches_and_filters(client, alice, rows, model):
    filters, make_needle = SEARCHES[model]
    rows.make(model, 3)
    needle = make_needle(rows)
    client.force_login(alice)
    search = {"q": "zebra"}
    # Each alone finds the row too: the other rows differ from it both ways.
    for query in (search, filters, {**search, **filters}):
        response = client.get(_url(model, "changelist"), query)
        # An unknown filter redirects with ?e=1 instead of filtering.
        assert response.status_code == 200, query
        assert [obj.pk for obj in response.context["cl"].result_list] == [needle.pk], query


def test_the_email_list_counts_and_sorts_by_attachments(client, alice, rows, make_email):
    bare, with_two = make_email(), rows.email()
    client.force_login(alice)
    column = client.get(_url(Email, "changelist")).context["cl"].list_display.index("attachment_count")
    response = client.get(_url(Email, "changelist"), {"o": f"-{column}"})
    assert [(email.pk, email.attachment_total) for email in response.context["cl"].result_list] == [
        (with_two.pk, 2),
        (bare.pk, 0),
    ]


def test_the_audit_list_filters_by_kind_of_object(client, alice, rows):
    run_entry = rows.auditentry(target=rows.processingrun())
    rows.auditentry(target=rows.action())
    client.force_login(alice)
    response = client.get(_url(AuditEntry, "changelist"))
    kinds = {
        choice["display"]
        for spec in response.context["cl"].filter_specs
        for choice in spec.choices(response.context["cl"])
    }
    # Only the kinds the trail holds, not every model in the project.
    assert {"Mail and actions | processing run", "Mail and actions | action"} <= kinds
    assert not any("session" in str(kind) for kind in kinds)
    run_type = run_entry.target_type_id
    response = client.get(_url(AuditEntry, "changelist"), {"target_type__id__exact": run_type})
    assert [entry.pk for entry in response.context["cl"].result_list] == [run_entry.pk]
    assert f'href="{_url(ProcessingRun, "change", run_entry.target_id)}"' in response.content.decode()


@pytest.mark.parametrize("model", MAILROOM_MODELS, ids=_label)
def test_charlie_is_sent_to_the_login_page(client, charlie, model):
    client.force_login(charlie)
    response = client.get(_url(model, "changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


# Query counts


@pytest.mark.parametrize("model", MAILROOM_MODELS, ids=_label)
def test_list_queries_do_not_grow_with_the_rows(client, alice, rows, model, django_assert_num_queries):
    url = _url(model, "changelist")
    client.force_login(alice)
    rows.make(model, 2)
    client.get(url)  # Warm the caches (content types...), so both measured requests start alike.
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    rows.make(model, 30)
    with django_assert_num_queries(len(few)):
        response = client.get(url)
    assert response.context["cl"].result_count >= 32


def test_bobs_approval_list_queries_do_not_grow_with_the_rows(client, bob, rows, django_assert_num_queries):
    _give(bob, "approvals.view_approval")
    url = _url(Approval, "changelist")
    client.force_login(bob)
    for approval in rows.make(Approval, 2):
        assign_perm("approvals.decide_approval", bob, approval)
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for approval in rows.make(Approval, 30):
        assign_perm("approvals.decide_approval", bob, approval)
    with django_assert_num_queries(len(few)):
        response = client.get(url)
    assert response.context["cl"].result_count == 32


def _grow_action(rows: Rows, action: Action, count: int) -> None:
    for n in range(count):
        record_audit(f"action.note{n}", target=action, acting_user=rows.user(), details={"n": n})
        rows.approval(action=action)


def test_the_action_page_queries_do_not_grow_with_steps_audit_and_approvals(
    client, alice, rows, django_assert_num_queries
):
    client.force_login(alice)
    few, many = rows.action(), rows.action()
    few.run.steps.exclude(name=StepName.INTAKE).delete()
    _grow_action(rows, few, 1)
    _grow_action(rows, many, 20)
    client.get(_url(Action, "change", few.pk))
    with CaptureQueriesContext(connection) as baseline:
        assert client.get(_url(Action, "change", few.pk)).status_code == 200
    with django_assert_num_queries(len(baseline)):
        assert client.get(_url(Action, "change", many.pk)).status_code == 200


@pytest.mark.parametrize("model", [Email, ProcessingRun], ids=_label)
def test_the_email_and_run_pages_queries_do_not_grow_with_their_rows(
    client, alice, rows, model, django_assert_num_queries
):
    client.force_login(alice)
    few_email, many_email = rows.email(), rows.email()
    few, many = rows.processingrun(steps=["intake"], email=few_email), rows.processingrun(email=many_email)
    rows.action(email=few_email)
    for _ in range(10):
        rows.action(email=many_email)
        Attachment.objects.create(email=many_email, filename="more.txt")
    if model is Email:
        few, many = few_email, many_email
    client.get(_url(model, "change", few.pk))
    with CaptureQueriesContext(connection) as baseline:
        assert client.get(_url(model, "change", few.pk)).status_code == 200
    with django_assert_num_queries(len(baseline)):
        assert client.get(_url(model, "change", many.pk)).status_code == 200


# The action page


def test_the_action_page_shows_its_email_parameters_steps_and_audit_trail(client, alice, rows):
    action = rows.action(
        email=rows.email(subject="Broken invoice"), params={"body": "Hi", "cc": ["zed@customer.example"]}
    )
    record_audit("action.looked_at", target=action, acting_user=alice)
    client.force_login(alice)
    page = client.get(_url(Action, "change", action.pk)).content.decode()
    assert "Broken invoice" in page
    assert "zed@customer.example" in page
    for step in StepName.labels:
        assert f"<strong>{step}</strong>" in page
    for event in ("action.proposed", "action.looked_at"):
        assert f"<td>{event}</td>" in page


def test_adding_an_action_proposes_it(client, alice, make_email):
    email = make_email()
    client.force_login(alice)
    response = client.post(
        _url(Action, "add"),
        {
            "type": "create_task",
            "email": email.pk,
            "priority": 30,
            "params": json.dumps({"title": "Fix the invoice"}),
            "rationale": "Customer asked",
        },
    )
    assert response.status_code == 302
    action = Action.objects.get()
    assert (action.type, action.status, action.email, action.created_by) == ("create_task", "proposed", email, alice)
    assert action.params == {"title": "Fix the invoice"}
    assert action.idempotency_key
    entry = AuditEntry.objects.for_object(action).get()
    assert (entry.event, entry.actor, entry.actor_label) == ("action.proposed", alice, "alice")


def test_adding_an_action_with_parameters_that_are_not_an_object_is_refused(client, alice):
    client.force_login(alice)
    response = client.post(_url(Action, "add"), {"type": "create_task", "priority": 20, "params": "[1, 2]"})
    assert response.status_code == 200
    assert "params" in response.context["adminform"].form.errors
    assert not Action.objects.exists()


def _succeed(action: Action) -> Action:
    for status in (ActionStatus.QUEUED, ActionStatus.RUNNING, ActionStatus.SUCCEEDED):
        transition_action(action, status, actor="worker")
    return action


def test_cancel_selected_actions_cancels_and_reports_what_it_refused(client, alice, rows):
    proposed, done = rows.action(), _succeed(rows.action())
    client.force_login(alice)
    response = client.post(
        _url(Action, "changelist"),
        {"action": "cancel_actions", "_selected_action": [proposed.pk, done.pk]},
        follow=True,
    )
    proposed.refresh_from_db()
    done.refresh_from_db()
    assert proposed.status == ActionStatus.CANCELLED
    entry = AuditEntry.objects.for_object(proposed).get(event="action.cancelled")
    assert (entry.actor, entry.details["reason"]) == (alice, "cancelled in the admin")
    assert done.status == ActionStatus.SUCCEEDED
    assert not AuditEntry.objects.for_object(done).filter(event="action.cancelled").exists()
    shown = [str(message) for message in response.context["messages"]]
    assert "Cancelled 1 action." in shown
    assert any(f"Action {done.pk} cannot go from 'succeeded' to 'cancelled'" in message for message in shown)


def test_a_viewer_cannot_cancel_actions(client, bob, rows):
    _give(bob, "actions.view_action")
    action = rows.action()
    client.force_login(bob)
    client.post(_url(Action, "changelist"), {"action": "cancel_actions", "_selected_action": [action.pk]})
    action.refresh_from_db()
    assert action.status == ActionStatus.PROPOSED


def test_the_status_cannot_be_changed_on_the_action_page(client, alice, rows):
    action = rows.action()
    client.force_login(alice)
    page = client.get(_url(Action, "change", action.pk))
    assert "status" not in page.context["adminform"].form.fields
    client.post(_url(Action, "change", action.pk), {"status": "succeeded", "type": "send_reply", "priority": 20})
    action.refresh_from_db()
    assert action.status == ActionStatus.PROPOSED
    assert list(AuditEntry.objects.for_object(action).values_list("event", flat=True)) == ["action.proposed"]


# The audit trail is read-only


@pytest.mark.security
def test_audit_entries_cannot_be_added_changed_or_deleted(client, alice, rows):
    entry = rows.auditentry(target=rows.action())
    client.force_login(alice)
    assert client.get(_url(AuditEntry, "change", entry.pk)).status_code == 200
    assert client.get(_url(AuditEntry, "add")).status_code == 403
    assert client.post(_url(AuditEntry, "add"), {"event": "forged", "actor_label": "alice"}).status_code == 403
    changed = client.post(_url(AuditEntry, "change", entry.pk), {"event": "forged", "actor_label": "mallory"})
    assert changed.status_code == 403
    assert client.post(_url(AuditEntry, "delete", entry.pk), {"post": "yes"}).status_code == 403
    client.post(_url(AuditEntry, "changelist"), {"action": "delete_selected", "_selected_action": [entry.pk]})
    client.post(
        _url(AuditEntry, "changelist"), {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert (stored.event, stored.actor_label, stored.details) == (entry.event, "alice", {"note": "looked at it"})
    assert AuditEntry.objects.filter(event="forged").count() == 0


@pytest.mark.security
def test_approvals_cannot_be_decided_in_the_admin(client, alice, rows):
    approval = rows.approval(status=ApprovalStatus.PENDING, decided_by=None, decided_at=None)
    client.force_login(alice)
    response = client.post(_url(Approval, "change", approval.pk), {"status": "approved", "comment": "fine"})
    assert response.status_code == 403
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


# Who sees which approvals


def test_bob_sees_only_the_approvals_he_may_decide(client, bob, rows):
    _give(bob, "approvals.view_approval")
    his, other = rows.approval(), rows.approval()
    assign_perm("approvals.decide_approval", bob, his)
    client.force_login(bob)
    response = client.get(_url(Approval, "changelist"))
    assert [approval.pk for approval in response.context["cl"].result_list] == [his.pk]
    assert client.get(_url(Approval, "change", his.pk)).status_code == 200
    # Someone else's approval is "not found" to him.
    assert client.get(_url(Approval, "change", other.pk)).status_code == 302


def test_a_global_decide_permission_does_not_show_bob_every_approval(client, bob, rows):
    _give(bob, "approvals.view_approval")
    his, _other = rows.approval(), rows.approval()
    assign_perm("approvals.decide_approval", bob, his)
    assign_perm("approvals.decide_approval", bob)
    client.force_login(bob)
    response = client.get(_url(Approval, "changelist"))
    assert [approval.pk for approval in response.context["cl"].result_list] == [his.pk]


def test_the_action_page_shows_bob_only_his_approvals(client, bob, rows):
    _give(bob, "actions.view_action", "approvals.view_approval")
    action = rows.action()
    his = rows.approval(action=action, comment="his one")
    rows.approval(action=action, comment="not his")
    assign_perm("approvals.decide_approval", bob, his)
    client.force_login(bob)
    page = client.get(_url(Action, "change", action.pk)).content.decode()
    assert "his one" in page
    assert "not his" not in page


def test_alice_sees_every_approval(client, alice, rows):
    approvals = rows.make(Approval, 3)
    client.force_login(alice)
    response = client.get(_url(Approval, "changelist"))
    assert {approval.pk for approval in response.context["cl"].result_list} == {a.pk for a in approvals}


def test_actions_cannot_be_deleted_only_cancelled(client, alice, rows):
    action = rows.action()
    client.force_login(alice)
    assert client.get(_url(Action, "delete", action.pk)).status_code == 403
    response = client.post(
        _url(Action, "changelist"), {"action": "delete_selected", "_selected_action": [action.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert Action.objects.filter(pk=action.pk).exists()


def test_editing_a_policy_in_the_admin_is_audited(client, alice, rows):
    policy = rows.approvalpolicy(condition=Condition.ALWAYS)
    client.force_login(alice)
    form = {
        "name": policy.name,
        "action_type": "forward_email",
        "condition": Condition.ALWAYS,
        "threshold": "",
        "requires_approval": "on",
        "approver_role": Role.DIRECTOR,
        "approver_group": policy.approver_group_id,
        "approvals_required": 2,
        "timeout": "12:00:00",
        "on_timeout": "reject",
        "active": "on",
    }
    response = client.post(_url(ApprovalPolicy, "change", policy.pk), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    entry = AuditEntry.objects.for_object(policy).get(event="approvalpolicy.changed")
    assert entry.actor == alice
    changed = entry.details["changed"]
    assert changed["approver_role"] == "director"
    assert changed["approvals_required"] == 2
    assert changed["timeout"] == "12:00:00"
    assert "name" not in changed


def test_deleting_a_team_member_in_the_admin_is_audited(client, alice, rows):
    member = rows.teammember()
    client.force_login(alice)
    response = client.post(_url(TeamMember, "delete", member.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not TeamMember.objects.filter(pk=member.pk).exists()
    entry = AuditEntry.objects.get(event="teammember.deleted")
    assert (entry.target_id, entry.actor) == (str(member.pk), alice)


def _user_form(user, **changes) -> dict:
    form = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "09:00:00",
        **changes,
    }
    return {key: value for key, value in form.items() if value != ""}


def test_staff_who_may_edit_users_cannot_promote_themselves(client, bob):
    _give(bob, "auth.change_user", "auth.view_user")
    client.force_login(bob)
    decide = Permission.objects.get(codename="decide_approval")
    response = client.post(
        _url(get_user_model(), "change", bob.pk),
        _user_form(bob, first_name="Bobby", is_superuser="on", user_permissions=[decide.pk]),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    bob.refresh_from_db()
    assert bob.first_name == "Bobby"
    assert not bob.is_superuser
    assert set(bob.user_permissions.values_list("codename", flat=True)) == {"change_user", "view_user"}


def test_a_superuser_can_grant_rights_and_it_is_audited(client, alice, bob):
    client.force_login(alice)
    decide = Permission.objects.get(codename="decide_approval")
    response = client.post(
        _url(get_user_model(), "change", bob.pk), _user_form(bob, user_permissions=[decide.pk], is_staff="on")
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert list(bob.user_permissions.all()) == [decide]
    entry = AuditEntry.objects.for_object(bob).get(event="user.changed")
    assert entry.details["changed"]["user_permissions"] == [str(decide)]


def test_adding_an_action_with_parameters_its_type_refuses_names_the_field(client, alice):
    client.force_login(alice)
    response = client.post(_url(Action, "add"), {"type": "create_task", "priority": 20, "params": '{"titel": "x"}'})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["params"]
    assert any(error.startswith("title:") for error in errors)
    assert any(error.startswith("titel:") for error in errors)
    assert not Action.objects.exists()


def test_running_a_proposed_action_from_the_admin_still_asks_its_policy(client, alice, make_email):
    import_directory({"members": TEAM})
    forward = propose_action("forward_email", email=make_email(), params={"to": ["x@outside.example"]})
    task = propose_action("create_task", email=make_email(), params={"title": "Call back"})
    client.force_login(alice)
    client.post(_url(Action, "changelist"), {"action": "run_actions", "_selected_action": [forward.pk, task.pk]})
    assert Action.objects.get(pk=task.pk).status == ActionStatus.QUEUED
    # Forwarding outside the company needs a lead, whoever clicked.
    assert Action.objects.get(pk=forward.pk).status == ActionStatus.PENDING_APPROVAL
