"""The management commands as people and scripts meet them: --help, exit codes and progress.

What each command does is tested with its subject (import_mail in
test_intake, process_pending in test_intelligence, ingest_imap in test_imap*,
import_team/export_team in test_directory, expire_approvals in
test_approval_expiry, load_demo in test_demo, stats in its own suite); here is
what they share: 0 done, 1 failed or partly failed, 2 nothing done because of
how the command was called.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.core.management.base import BaseCommand
from django.utils import timezone

from actions.executor import queue_action, run_action
from actions.management.base import CANNOT_START, FAILED
from actions.models import Action, ActionStatus, AuditEntry, ExecutionSwitch
from actions.proposals import propose_action
from actions.transitions import transition_action
from approvals import expiry
from approvals.models import Approval
from tests import processes
from tests.openai_server import api_error
from tests.test_intake import message

S = ActionStatus
MAILROOM_APPS = {"actions", "approvals", "teams"}
MAILROOM_COMMANDS = sorted(name for name, app in get_commands().items() if app in MAILROOM_APPS)
# Every operation a person runs by hand, as DESIGN.md names them ("What users touch").
DESIGNED = {
    "load_demo", "import_mail", "ingest_imap", "process_pending", "import_team", "export_team",
    "expire_approvals", "undo_action", "retry_dead", "pause_execution", "resume_execution", "stats",
}  # fmt: skip


class Terminal(io.StringIO):
    """Standard error as a person at a terminal has it."""

    def isatty(self) -> bool:
        return True


def run(name: str, *args: str, **options) -> tuple[str, str]:
    """Call a command; its stdout and stderr."""
    out, err = io.StringIO(), options.pop("stderr", io.StringIO())
    call_command(name, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_failing(returncode: int, name: str, *args: str, **options) -> tuple[CommandError, str, str]:
    """Call a command that must fail with `returncode`; the error, stdout and stderr."""
    out, err = io.StringIO(), options.pop("stderr", io.StringIO())
    with pytest.raises(CommandError) as caught:
        call_command(name, *args, stdout=out, stderr=err, **options)
    assert caught.value.returncode == returncode, caught.value
    return caught.value, out.getvalue(), err.getvalue()


def bar(label: str, done: int, total: int) -> str:
    """The progress bar's line, 30 characters wide."""
    filled = 30 * done // total
    return f"{label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"


def help_text(name: str) -> str:
    command = load_command_class(get_commands()[name], name)
    return " ".join(command.create_parser("manage.py", name).format_help().split())


def manage(*args: str) -> subprocess.CompletedProcess:
    """Run `manage.py` as a script would, on the test database."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": processes.test_database_url()},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def dead(make_action):
    """Dead actions, as the executor leaves them once out of attempts."""

    def make(count: int = 1) -> list[Action]:
        actions = [make_action("archive_email") for _ in range(count)]
        Action.objects.filter(pk__in=[a.pk for a in actions]).update(status=S.DEAD, attempts=5)
        return actions

    return make


# --- Every command explains itself --------------------------------------------------------------


def test_every_designed_command_exists():
    assert set(MAILROOM_COMMANDS) >= DESIGNED, DESIGNED - set(MAILROOM_COMMANDS)


@pytest.mark.parametrize("name", MAILROOM_COMMANDS)
def test_the_help_says_what_it_does_and_what_each_exit_code_means(name):
    text = help_text(name)

    assert re.search(r"Exit codes?:? 0 \w.*\b1 \w", text), text
    assert len(load_command_class(get_commands()[name], name).help) > 40


@pytest.mark.parametrize("name", MAILROOM_COMMANDS)
def test_every_argument_of_its_own_is_explained(name):
    command = load_command_class(get_commands()[name], name)
    base = {action.dest for action in BaseCommand().create_parser("manage.py", name)._actions}
    own = [action for action in command.create_parser("manage.py", name)._actions if action.dest not in base]

    assert [action.dest for action in own if not action.help] == []


def test_long_work_offers_to_hide_the_progress_bar():
    for name in ("import_mail", "ingest_imap", "process_pending", "retry_dead", "expire_approvals"):
        assert "--no-progress" in help_text(name), name


# --- Exit codes, as a script sees them ----------------------------------------------------------


def test_a_real_process_exits_2_on_bad_arguments_and_on_a_missing_input(tmp_path):
    bad_argument = manage("undo_action", "not-a-number")
    missing_file = manage("import_team", str(tmp_path / "nowhere.json"))

    assert bad_argument.returncode == 2, bad_argument.stderr
    assert "invalid int value: 'not-a-number'" in bad_argument.stderr
    assert missing_file.returncode == 2, missing_file.stderr
    assert "Cannot read" in missing_file.stderr and "nowhere.json" in missing_file.stderr


@pytest.mark.django_db(transaction=True)
def test_a_real_process_exits_0_when_done_and_1_when_part_failed(make_email):
    done = manage("expire_approvals", "--no-progress")
    assert (done.returncode, done.stdout) == (0, "Expired 0 approvals.\n"), done.stderr

    dead_one = propose_action("archive_email", email=make_email())
    Action.objects.filter(pk=dead_one.pk).update(status=S.DEAD)
    alive = propose_action("archive_email", email=make_email())
    partly = manage("retry_dead", str(dead_one.pk), str(alive.pk), "--no-progress")

    assert partly.returncode == 1, partly.stderr
    assert "Retried 1 dead action." in partly.stdout
    assert f"Action {alive.pk} is proposed, not dead." in partly.stderr
    assert Action.objects.get(pk=dead_one.pk).status == S.QUEUED


# --- Part of the work failed: exit 1, never 0 -----------------------------------------------------


def test_import_mail_stores_everything_but_exits_1_when_processing_some_of_it_fails(db, openai_settings, tmp_path):
    openai_settings.respond_with(api_error(500))
    (tmp_path / "one.eml").write_bytes(message(message_id="<one@x.example>"))

    error, out, _ = run_failing(FAILED, "import_mail", str(tmp_path), "--process", "--no-progress")

    assert "1 stored" in out and "Processed: 0 succeeded, 1 failed." in out
    assert str(error) == "1 run(s) failed (their emails wait in the review queue)."


def test_load_demo_exits_1_when_demo_mail_fails_analysis(db, openai_settings, media):
    openai_settings.respond_with(api_error(500))

    error, out, _ = run_failing(FAILED, "load_demo", "--mail", "2")

    assert "Demo mail: 2 new messages analysed (0 runs succeeded" in out
    assert str(error) == "2 demo run(s) failed; see the review queue."


# --- retry_dead ---------------------------------------------------------------------------------


def test_retry_dead_requeues_every_dead_action_and_audits_it(dead):
    actions = dead(3)

    out, _ = run("retry_dead", "--no-progress")

    assert out == "Retried 3 dead actions.\n"
    assert set(Action.objects.filter(pk__in=[a.pk for a in actions]).values_list("status", "attempts")) == {
        (S.QUEUED, 0)
    }
    assert AuditEntry.objects.filter(event="action.queued", actor_label="command line").count() == 3


def test_retry_dead_takes_only_the_type_asked_for(dead, make_action):
    archive = dead()[0]
    reply = make_action("send_reply")
    Action.objects.filter(pk=reply.pk).update(status=S.DEAD)

    out, _ = run("retry_dead", "--type", "send_reply", "--no-progress")

    assert out == "Retried 1 dead action.\n"
    assert Action.objects.get(pk=archive.pk).status == S.DEAD


def test_retry_dead_with_an_unknown_id_retries_nothing_and_exits_2(dead):
    action = dead()[0]

    error, _, _ = run_failing(CANNOT_START, "retry_dead", str(action.pk), "999999")

    assert "There is no action 999999" in str(error)
    assert Action.objects.get(pk=action.pk).status == S.DEAD


def test_retry_dead_with_nothing_dead_is_done(db):
    assert run("retry_dead") == ("Retried 0 dead actions.\n", "")


# --- undo_action --------------------------------------------------------------------------------


@pytest.fixture
def task_done(make_email):
    """A create_task action the executor ran: a local task, which undo cancels."""
    proposed = propose_action("create_task", email=make_email(), params={"title": "Call the customer back"})
    action = queue_action(proposed, actor="test")
    Action.objects.filter(pk=action.pk).update(next_attempt_at=None)
    assert run_action(action.pk) == "succeeded"
    return Action.objects.get(pk=action.pk)


def test_undo_action_undoes_and_exits_0(task_done):
    out, _ = run("undo_action", str(task_done.pk))

    assert out.startswith(f"Undid action {task_done.pk} (Create task).")
    assert Action.objects.get(pk=task_done.pk).status == S.UNDONE
    assert AuditEntry.objects.filter(event="action.undo_done", actor_label="command line").exists()


def test_undo_action_exits_1_with_the_reason_when_it_cannot_be_undone(task_done):
    run("undo_action", str(task_done.pk))

    error, _, _ = run_failing(FAILED, "undo_action", str(task_done.pk))

    assert f"Action {task_done.pk} was not undone: Action {task_done.pk} was already undone." == str(error)


def test_undo_action_exits_2_for_an_action_that_does_not_exist(db):
    error, _, _ = run_failing(CANNOT_START, "undo_action", "999999")

    assert str(error) == "There is no action 999999."


# --- The kill switch ----------------------------------------------------------------------------


def test_pause_and_resume_flip_the_switch_and_say_so(db):
    assert run("pause_execution", "--reason", "incident 42")[0] == "Execution paused.\n"
    assert run("pause_execution")[0] == "Execution was already paused.\n"
    assert ExecutionSwitch.is_paused()
    assert AuditEntry.objects.filter(event="execution.paused", details__reason="incident 42").exists()

    assert run("resume_execution")[0] == "Execution resumed; 0 queued actions enqueued.\n"
    assert not ExecutionSwitch.is_paused()


# --- expire_approvals ---------------------------------------------------------------------------


@pytest.fixture
def overdue(make_action):
    """Approvals past their deadline, on actions waiting for them."""

    def make(count: int) -> list[Approval]:
        approvals = []
        for _ in range(count):
            action = transition_action(make_action(), S.PENDING_APPROVAL, actor="policy")
            approvals.append(Approval.objects.create(action=action, expires_at=timezone.now() - timedelta(minutes=1)))
        return approvals

    return make


def test_expire_approvals_settles_the_others_and_exits_1_when_one_fails(overdue, monkeypatch):
    broken, *fine = overdue(3)
    real_time_out = expiry.time_out

    def time_out(approval, now):
        if approval.pk == broken.pk:
            raise RuntimeError("the database went away")
        return real_time_out(approval, now)

    # The failure is staged in the service the command calls; the command's handling of it is under test.
    monkeypatch.setattr(expiry, "time_out", time_out)

    _, out, err = run_failing(FAILED, "expire_approvals", "--no-progress")

    assert out == "Expired 2 approvals.\n"
    assert f"Approval {broken.pk}: the database went away" in err
    assert [a.status for a in Approval.objects.filter(pk__in=[a.pk for a in fine])] == ["expired", "expired"]
    assert Approval.objects.get(pk=broken.pk).status == "pending"


# --- Progress on long work ----------------------------------------------------------------------


def test_at_a_terminal_the_bar_redraws_one_line(dead):
    dead(4)

    _, err = run("retry_dead", stderr=Terminal())

    assert err == "".join("\r" + bar("Retrying", n, 4) for n in (1, 2, 3, 4)) + "\n"


def test_in_a_log_it_prints_the_start_and_a_line_every_tenth_of_the_way(dead):
    dead(20)

    _, err = run("retry_dead")

    assert err.splitlines() == [bar("Retrying", n, 20) for n in (1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20)]


@pytest.mark.parametrize("quiet", [("--no-progress",), ("--verbosity", "0")])
def test_no_progress_or_verbosity_0_draws_no_bar(dead, overdue, quiet):
    dead(3)
    overdue(2)

    assert run("retry_dead", *quiet, stderr=Terminal())[1] == ""
    assert run("expire_approvals", *quiet, stderr=Terminal())[1] == ""


def test_expire_approvals_and_import_mail_show_progress_too(overdue, tmp_path):
    overdue(2)
    (tmp_path / "one.eml").write_bytes(
        b"From: a@x.example\r\nMessage-ID: <1@x.example>\r\nSubject: hi\r\n\r\nhello\r\n"
    )

    assert run("expire_approvals")[1].splitlines() == [bar("Expiring", 1, 2), bar("Expiring", 2, 2)]
    assert run("import_mail", str(tmp_path))[1].splitlines() == [bar("Importing", 1, 1)]
