"""load_demo fills every screen with believable data, and running it twice changes nothing."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import call_command

from actions.models import Action, ActionStatus, AuditEntry, Email, ProcessingRun
from approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from teams.models import TeamMember


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
    # The real policies routed them: some run at once, some wait for a person.
    assert {ActionStatus.QUEUED, ActionStatus.PENDING_APPROVAL, ActionStatus.CANCELLED} <= statuses
    # Every action pending approval has an approval waiting for approvers who were mailed a link.
    for action in Action.objects.filter(status=ActionStatus.PENDING_APPROVAL):
        approval = action.approvals.get(status=ApprovalStatus.PENDING)
        assert approval.recipients.exists()
    # Nothing pretends to have run.
    assert not Action.objects.filter(status=ActionStatus.SUCCEEDED).exists()
    # Every action's history starts with its proposal.
    assert AuditEntry.objects.filter(event="action.proposed").count() == Action.objects.count()
    assert "8 new emails" in capsys.readouterr().out


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
