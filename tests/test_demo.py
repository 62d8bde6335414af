"""load_demo fills every screen with believable data, running it twice changes nothing, and the summary
the start script prints leads to an approval its approver can decide."""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from actions.demo_summary import approval_waiting, summary
from actions.executor import run_action
from actions.models import Action, ActionStatus, AuditEntry, Email, EmailStatus, ProcessingRun, RunStatus
from approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from teams.models import TeamMember

SITE = "http://127.0.0.1:8000"


def _counts() -> dict[str, int]:
    models = [Email, Action, ProcessingRun, AuditEntry, Approval, ApprovalPolicy, TeamMember]
    return {model.__name__: model.objects.count() for model in models}


def test_it_loads_a_team_policies_mail_and_actions(db, capsys):
    call_command("load_demo")
    counts = _counts()
    assert counts["TeamMember"] == 8
    assert counts["ApprovalPolicy"] >= 3
    assert counts["Email"] >= 8
    statuses = set(Action.objects.values_list("status", flat=True))
    # The real policies routed them: some run at once, some wait for a person, one is only a suggestion.
    S = ActionStatus
    assert {S.QUEUED, S.PENDING_APPROVAL, S.CANCELLED, S.PROPOSED} <= statuses
    assert AuditEntry.objects.filter(event="action.suggested").count() == 1
    # Every action pending approval has an approval waiting for approvers who were mailed a link.
    for action in Action.objects.filter(status=ActionStatus.PENDING_APPROVAL):
        approval = action.approvals.get(status=ApprovalStatus.PENDING)
        assert approval.recipients.exists()
    # Nothing pretends to have run.
    assert not Action.objects.filter(status=ActionStatus.SUCCEEDED).exists()
    # Every action's history starts with its proposal.
    assert AuditEntry.objects.filter(event="action.proposed").count() == Action.objects.count()
    assert "8 new emails" in capsys.readouterr().out


def test_its_runs_are_finished_so_workers_execute_what_was_queued(db):
    call_command("load_demo")
    assert set(ProcessingRun.objects.values_list("status", flat=True)) == {RunStatus.SUCCEEDED}
    # The email whose proposal is only a suggestion waits in the review queue; the others are processed.
    assert list(Email.objects.filter(status=EmailStatus.REVIEW).values_list("subject", flat=True)) == [
        "Quarterly review: can we meet Thursday at 15:00?"
    ]
    assert Email.objects.filter(status=EmailStatus.PROCESSED).count() == 7
    # Those not held back by a send delay: the urgent escalation and task, the newsletter's archiving...
    due = list(Action.objects.filter(status=ActionStatus.QUEUED, next_attempt_at__isnull=True))
    assert len(due) >= 3
    assert [run_action(action.pk) for action in due] == ["succeeded"] * len(due)


def test_loading_twice_changes_nothing(db):
    call_command("load_demo")
    first = _counts()
    call_command("load_demo")
    assert _counts() == first


def test_it_prints_the_same_admin_login_each_time(db, capsys, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("load_demo", admin=True)
    first = capsys.readouterr().out
    call_command("load_demo", admin=True)
    second = capsys.readouterr().out
    login_line = next(line for line in first.splitlines() if line.startswith("Admin login"))
    assert login_line in second
    password = login_line.split("password '")[1].rstrip("'")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)


def test_it_does_not_print_a_password_that_was_changed(db, capsys, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    call_command("load_demo", admin=True)
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("chosen-by-the-owner")
    admin.save()
    capsys.readouterr()
    call_command("load_demo", admin=True)
    out = capsys.readouterr().out
    assert "password changed since" in out
    assert "chosen-by-the-owner" not in out


def test_demo_approvers_can_sign_in_with_the_printed_password(db, capsys, settings, tmp_path, client):
    settings.DATA_DIR = tmp_path
    call_command("load_demo", admin=True)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Team members sign in"))
    password = line.split("password '")[1].split("'")[0]
    assert client.login(username="aiko.tanaka@acme.example", password=password)
    # A password someone chose later is left alone.
    aiko = get_user_model().objects.get(username="aiko.tanaka@acme.example")
    aiko.set_password("chosen-later")
    aiko.save()
    call_command("load_demo", admin=True)
    assert client.login(username="aiko.tanaka@acme.example", password="chosen-later")


def test_demo_mail_goes_through_the_real_pipeline(db, capsys, media):
    call_command("load_demo", "--mail", "20")
    out = capsys.readouterr().out
    assert "Demo mail: 20 new messages analysed (20 runs succeeded" in out
    generated = Email.objects.filter(source="demo")
    assert generated.count() == 20
    # Analysed by the local backend, routed by the policies: some run, some wait for a person.
    assert ProcessingRun.objects.filter(email__in=generated, backend="local", status="succeeded").count() == 20
    routed = set(Action.objects.filter(email__in=generated).values_list("status", flat=True))
    assert {ActionStatus.QUEUED, ActionStatus.PENDING_APPROVAL} <= routed


def logins(text: str) -> list[tuple[str, str]]:
    return re.findall(r"user (\S+), password (\S+)", text)


def test_the_summary_says_where_to_look_and_how_to_sign_in(db, settings, tmp_path, client):
    settings.DATA_DIR, settings.SITE_URL = tmp_path, SITE
    call_command("load_demo", admin=True)
    text = summary(SITE, every=5, logs="var/logs")
    for address in ("/admin/dashboard/", "/admin/", "/admin/integrations/outboxmessage/", "/api/docs/", "/health/"):
        assert f"{SITE}{address}\n" in text, address
    assert "New demo mail arrives every 5 s." in text and "the demo mail: var/logs/\n" in text
    (admin, admin_password), (approver, password) = logins(text)
    assert admin == "admin" and client.login(username=admin, password=admin_password)
    # The link printed is the one mailed to its approver, in the outbox the admin can open.
    waiting = approval_waiting(SITE)
    assert f"Approval link  {waiting.link}\n" in text
    assert waiting.link in waiting.message.text_body and waiting.message.to == [approver]
    assert f"/admin/integrations/outboxmessage/{waiting.message.pk}/change/" in text

    # It works for the printed approver, signed in with the printed password.
    client.logout()
    assert client.login(username=approver, password=password)
    decide = client.get(waiting.link.removeprefix(SITE), follow=True)
    assert decide.status_code == 200 and b"Approve" in decide.content
    client.post("/approvals/decide/", {"approval": waiting.approval.pk, "decision": "approve"})
    waiting.approval.refresh_from_db()
    assert waiting.approval.status == ApprovalStatus.APPROVED
    assert Action.objects.get(pk=waiting.approval.action_id).status == ActionStatus.QUEUED
    # Once it is decided, the summary offers the next approval still waiting.
    assert approval_waiting(SITE).approval != waiting.approval


def test_the_summary_prints_no_link_to_another_address_nor_a_changed_password(db, settings, tmp_path):
    settings.DATA_DIR, settings.SITE_URL = tmp_path, SITE
    call_command("load_demo", admin=True)
    # Mail sent while Mailroom listened elsewhere links there: nothing to follow from here.
    assert approval_waiting("http://127.0.0.1:9999") is None
    assert "(no approval request is waiting in the outbox now)" in summary("http://127.0.0.1:9999")
    approver = approval_waiting(SITE).approver
    approver.set_password("chosen-later")
    approver.save()
    text = summary(SITE)
    assert f"user {approver.username} (its password was changed since the demo set it)" in text
    assert "chosen-later" not in text
    assert len(logins(text)) == 1  # the admin's only


def test_the_summary_offers_no_link_of_an_expired_or_escalated_approval(db, settings, tmp_path):
    settings.DATA_DIR, settings.SITE_URL = tmp_path, SITE
    call_command("load_demo")
    Approval.objects.update(status=ApprovalStatus.EXPIRED, decided_at=timezone.now())
    assert approval_waiting(SITE) is None
