"""The handlers of Mailroom's own records: tasks, completion, escalation and archiving.

upload_file has its own suites: tests/test_files*.py.

Handlers are called directly, as the executor calls them: execute(action,
parse(action)), and undo with the outcome copied onto the action. The team
is six people; the work is due at the fixed instant of the assignment tests,
Wednesday 2026-11-18 10:00 UTC, when everyone is in working hours except
Ethan (02:00 in Los Angeles).
"""

from __future__ import annotations

import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from actions.executor import queue_action, run_action
from actions.handlers import ActionFailed, UndoRefused, get_handler, validation_errors
from actions.models import Action, AuditEntry, Email, EmailStatus, Priority
from actions.proposals import propose_action
from integrations import outbox
from integrations.errors import IntegrationError
from integrations.models import Circuit, CircuitState, LocalTask, OutboxMessage, TaskStatus
from teams.directory import import_directory
from teams.models import Role, TeamMember
from tests.team_data import member
from tests.test_assignment import WEDNESDAY_10_UTC

SMALL_TEAM = [
    member("Dana Whitfield", "director", None, {"leadership": 5}, "Europe/London", "09:00-17:00"),
    member("Marco Rossi", "manager", "dana", {"operations": 5}, "Europe/Rome", "08:30-17:30"),
    member("Priya Natarajan", "lead", "marco", {"reporting": 5}, "Europe/London", "09:00-17:00"),
    member("Liam OBrien", "agent", "priya", {"billing": 4}, "Europe/Dublin", "09:00-17:00"),
    member("Olivia Hart", "agent", "priya", {"billing": 2, "customer-support": 4}, "Europe/London", "09:00-17:00"),
    member("Ethan Brooks", "agent", "priya", {"scheduling": 5}, "America/Los_Angeles", "08:00-16:00"),
]


class DownMailServer(BaseEmailBackend):
    """A mail server that drops every connection."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture
def team(db) -> dict[str, TeamMember]:
    import_directory({"members": SMALL_TEAM})
    return {m.user.first_name.lower(): m for m in TeamMember.objects.select_related("user")}


@pytest.fixture
def sent(settings) -> list:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail.outbox


@pytest.fixture
def act(make_email):
    """Propose an action of a type with the given parameters, due at WEDNESDAY_10_UTC."""

    def make(type: str, params: dict | None = None, *, email="new", assignee=None, priority=Priority.NORMAL) -> Action:
        email = make_email(subject="Refund for order 1234") if email == "new" else email
        action = propose_action(type, email=email, params=params or {}, priority=priority)
        Action.objects.filter(pk=action.pk).update(scheduled_for=WEDNESDAY_10_UTC, assignee=assignee)
        action.refresh_from_db()
        return action

    return make


def run(action: Action):
    handler = get_handler(action.type)
    return handler.execute(action, handler.parse(action))


def undo(action: Action, outcome) -> dict:
    action.result, action.undo_data = outcome.result, outcome.undo_data
    handler = get_handler(action.type)
    return handler.undo(action, handler.parse(action))


def fields(action_type: str, params: dict) -> list[str]:
    return [field for field, _ in validation_errors(action_type, params)]


def names(members) -> list[str]:
    return sorted(m.user.first_name.lower() for m in members)


# --- Registration and parameters ------------------------------------------------------


@pytest.mark.parametrize(
    ("action_type", "capability"),
    [
        ("create_task", "tasks"),
        ("delegate_task", "tasks"),
        ("mark_complete", "local"),
        ("escalate_issue", "local"),
        ("archive_email", "mailbox"),
        ("upload_file", "files"),
    ],
)
def test_each_type_has_an_undoable_handler_on_its_integration(action_type, capability):
    handler = get_handler(action_type)
    assert (handler.type, handler.capability, handler.undoable) == (action_type, capability, True)


@pytest.mark.parametrize(
    ("action_type", "params", "uses"),
    [
        ("escalate_issue", {"reason": "Still waiting"}, ("local", "mail", "chat")),
        ("delegate_task", {}, ("tasks", "mail")),
        ("schedule_meeting", {}, ("calendar", "mail")),
        ("mark_complete", {"target": "task", "task_id": 7}, ("tasks",)),
        ("mark_complete", {"target": "email"}, ("local",)),
        ("mark_complete", ["not", "parameters"], ("local",)),
        ("create_task", {}, ("tasks",)),
    ],
)
def test_each_type_waits_on_the_circuit_of_every_integration_it_calls(action_type, params, uses):
    assert get_handler(action_type).uses(Action(type=action_type, params=params)) == uses


def test_unknown_parameters_are_refused_by_name():
    assert fields("create_task", {"title": "Call back", "owner": "liam@acme.example"}) == ["owner"]
    assert fields("archive_email", {"folder": "Archive"}) == ["folder"]


def test_a_blank_or_overlong_title_is_refused():
    assert fields("create_task", {"title": "   "}) == ["title"]
    assert fields("create_task", {"title": "x" * 301}) == ["title"]
    assert fields("create_task", {}) == ["title"]


def test_skills_are_names_or_levels_from_1_to_5():
    assert fields("create_task", {"title": "t", "skills": ["billing"]}) == []
    assert fields("create_task", {"title": "t", "skills": {"billing": 5}}) == []
    assert fields("create_task", {"title": "t", "skills": {"billing": 6}}) == ["skills.billing"]
    assert fields("delegate_task", {"skills": "billing"}) == ["skills"]


def test_a_due_time_must_say_its_time_zone():
    errors = validation_errors("create_task", {"title": "t", "due_at": "2026-11-20T10:00:00"})
    assert errors[0][0] == "due_at"
    assert "timezone" in errors[0][1]


def test_addresses_are_checked_and_the_bad_one_named():
    errors = validation_errors("create_task", {"title": "t", "assignee": "liam at acme"})
    assert errors == [("assignee", "Value error, 'liam at acme' is not an email address")]
    assert fields("delegate_task", {"to": "nobody@"}) == ["to"]


def test_task_ids_are_whole_positive_numbers():
    assert fields("delegate_task", {"task_id": True}) == ["task_id"]
    assert fields("delegate_task", {"task_id": 0}) == ["task_id"]


def test_marking_a_task_complete_needs_its_id():
    errors = validation_errors("mark_complete", {"target": "task"})
    assert "task_id is required" in errors[0][1]
    assert "task_id is only for target 'task'" in validation_errors("mark_complete", {"task_id": 3})[0][1]
    assert fields("mark_complete", {"target": "thread"}) == ["target"]


def test_escalation_needs_a_reason_and_a_priority_of_high_or_urgent():
    assert fields("escalate_issue", {}) == ["reason"]
    assert fields("escalate_issue", {"reason": "Waiting", "priority": "low"}) == ["priority"]


@pytest.mark.parametrize(
    ("folder", "why"),
    [
        ("../etc", "'..'"),
        ("contracts/../../etc", "'..'"),
        ("/etc/cron.d", "absolute"),
        ("C:/Windows", "absolute"),
        ("contracts\\2026", "backslashes"),
        ("contracts//2026", "folder name ''"),
        (".hidden", "folder name '.hidden'"),
    ],
)
def test_an_upload_folder_must_stay_inside_the_uploads_area(folder, why):
    (field, message), *_ = validation_errors("upload_file", {"folder": folder})
    assert field == "folder"
    assert why in message


def test_an_upload_folder_may_be_nested():
    assert fields("upload_file", {"folder": "contracts/2026 Q4/acme_ltd"}) == []


# --- create_task -----------------------------------------------------------------


def test_the_task_goes_to_the_best_matching_member(team, act):
    action = act("create_task", {"title": "Refund order 1234", "skills": ["billing"]}, priority=Priority.HIGH)
    outcome = run(action)
    task = LocalTask.objects.get(action=action)
    assert (task.title, task.assignee, task.email, task.priority) == (
        "Refund order 1234",
        team["liam"],
        action.email,
        Priority.HIGH,
    )
    assert outcome.result["assignee_id"] == team["liam"].pk
    assert outcome.result["assignment"] == "matched"
    assert "billing level 4" in outcome.result["explanation"]
    assert outcome.undo_data == {"task_id": task.pk}


def test_when_nobody_fits_the_task_falls_back_to_a_lead(team, act):
    # Ethan has the skill but is asleep in Los Angeles.
    outcome = run(act("create_task", {"title": "Book the offsite", "skills": ["scheduling"]}))
    assert (outcome.result["assignment"], outcome.result["assignee_id"]) == ("fallback_lead", team["priya"].pk)
    assert outcome.result["explanation"].startswith("Nobody fits")


def test_with_nobody_to_fall_back_to_the_task_is_left_unassigned(team, act):
    TeamMember.objects.exclude(role=Role.AGENT).update(active=False)
    action = act("create_task", {"title": "Book the offsite", "skills": ["scheduling"]})
    outcome = run(action)
    assert outcome.result["assignment"] == "unassigned"
    assert outcome.result["assignee_id"] is None
    assert LocalTask.objects.get(action=action).assignee is None


def test_the_member_named_gets_the_task_whatever_the_ranking(team, act):
    outcome = run(act("create_task", {"title": "Refund", "skills": ["billing"], "assignee": "Ethan@acme.example"}))
    assert (outcome.result["assignment"], outcome.result["assignee_id"]) == ("named", team["ethan"].pk)


def test_an_address_that_is_no_member_fails_for_good_naming_it(team, act):
    action = act("create_task", {"title": "Refund", "assignee": "stranger@acme.example"})
    with pytest.raises(ActionFailed, match=r"stranger@acme\.example") as failure:
        run(action)
    assert failure.value.permanent
    assert not LocalTask.objects.filter(action=action).exists()


def test_the_due_time_and_description_reach_the_task(team, act):
    due = "2026-11-20T16:00:00+01:00"
    action = act("create_task", {"title": "Refund", "description": "Order 1234, card ending 42", "due_at": due})
    run(action)
    task = LocalTask.objects.get(action=action)
    assert task.description == "Order 1234, card ending 42"
    assert task.due_at.isoformat() == "2026-11-20T15:00:00+00:00"


def test_running_create_task_twice_makes_one_task_and_reports_it_twice_alike(team, act):
    action = act("create_task", {"title": "Refund", "skills": ["billing"]})
    first, second = run(action), run(action)
    assert LocalTask.objects.filter(action=action).count() == 1
    assert first.result == second.result
    assert first.undo_data == second.undo_data


def test_a_task_needs_no_email(team, act):
    action = act("create_task", {"title": "Renew the certificate"}, email=None)
    run(action)
    assert LocalTask.objects.get(action=action).email is None


def test_undoing_create_task_cancels_the_task(team, act):
    action = act("create_task", {"title": "Refund"})
    details = undo(action, run(action))
    assert LocalTask.objects.get(action=action).status == TaskStatus.CANCELLED
    assert details["was"] == TaskStatus.OPEN


def test_a_completed_task_is_not_undone(team, act):
    action = act("create_task", {"title": "Refund"})
    outcome = run(action)
    LocalTask.objects.filter(action=action).update(status=TaskStatus.DONE)
    with pytest.raises(UndoRefused, match="already completed"):
        undo(action, outcome)
    assert LocalTask.objects.get(action=action).status == TaskStatus.DONE


def test_the_executor_records_the_chosen_member_on_the_action(team, act):
    action = queue_action(act("create_task", {"title": "Refund", "skills": ["billing"]}), actor="test")
    Action.objects.filter(pk=action.pk).update(next_attempt_at=None)
    assert run_action(action.pk) == "succeeded"
    assert Action.objects.get(pk=action.pk).assignee == team["liam"]


# --- delegate_task -----------------------------------------------------------------


@pytest.fixture
def liams_task(team, make_email) -> LocalTask:
    email = make_email(subject="Refund for order 1234")
    return LocalTask.objects.create(title="Refund order 1234", email=email, assignee=team["liam"])


def test_delegation_moves_the_emails_open_task_to_someone_else_and_tells_them(team, act, sent, liams_task):
    action = act("delegate_task", {"skills": ["billing"], "note": "Liam is on leave."}, email=liams_task.email)
    outcome = run(action)
    liams_task.refresh_from_db()
    # Liam ranks first for billing, but the work is leaving him.
    assert liams_task.assignee == team["olivia"]
    assert outcome.result["assignee_id"] == team["olivia"].pk
    assert outcome.undo_data == {
        "task_id": liams_task.pk,
        "assignee_id": team["olivia"].pk,
        "previous_assignee_id": team["liam"].pk,
    }
    [notice] = sent
    assert notice.to == ["Olivia Hart <olivia@acme.example>"]
    assert notice.subject == "Delegated to you: Refund for order 1234"
    assert "Liam is on leave." in notice.body
    assert notice.extra_headers["Message-ID"] == outbox.message_id_for(action.pk, "delegation")


def test_a_named_task_goes_to_the_member_named(team, act, sent, liams_task):
    outcome = run(act("delegate_task", {"task_id": liams_task.pk, "to": "ethan@acme.example"}, email=None))
    liams_task.refresh_from_db()
    assert liams_task.assignee == team["ethan"]
    assert outcome.result["assignment"] == "named"
    assert [m.to for m in sent] == [["Ethan Brooks <ethan@acme.example>"]]


def test_an_email_without_a_task_gets_one_to_delegate(team, act, sent):
    action = act("delegate_task", {"skills": ["billing"]})
    outcome = run(action)
    task = LocalTask.objects.get(action=action)
    assert (task.title, task.email, task.assignee) == ("Handle: Refund for order 1234", action.email, team["liam"])
    assert outcome.result["created_task"] is True
    assert outcome.undo_data["previous_assignee_id"] is None


def test_delegating_twice_moves_the_task_once_and_sends_one_notice(team, act, sent, liams_task):
    action = act("delegate_task", {"skills": ["billing"]}, email=liams_task.email)
    first, second = run(action), run(action)
    assert first.undo_data == second.undo_data
    assert LocalTask.objects.get(pk=liams_task.pk).assignee == team["olivia"]
    assert len(sent) == 1
    assert OutboxMessage.objects.filter(action=action).count() == 1


def test_a_delegation_retried_after_a_mail_failure_keeps_its_first_decision(team, act, settings, liams_task):
    action = act("delegate_task", {"skills": ["billing"]}, email=liams_task.email)
    settings.EMAIL_BACKEND = "tests.test_handlers_local.DownMailServer"
    with pytest.raises(IntegrationError) as failure:
        run(action)
    assert not failure.value.permanent
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    outcome = run(action)
    # Not "from Olivia to the next one": the retry finds the delegation it already made.
    assert outcome.undo_data["previous_assignee_id"] == team["liam"].pk
    assert LocalTask.objects.get(pk=liams_task.pk).assignee == team["olivia"]
    assert [m.to for m in mail.outbox] == [["Olivia Hart <olivia@acme.example>"]]
    assert outcome.result["notice"]["status"] == "sent"


def test_a_delegation_whose_notice_fails_counts_on_the_mail_circuit(team, act, settings, liams_task):
    action = queue_action(act("delegate_task", {"skills": ["billing"]}, email=liams_task.email), actor="test")
    settings.EMAIL_BACKEND = "tests.test_handlers_local.DownMailServer"
    assert run_action(action.pk) == "failed"
    assert Circuit.objects.get(name="mail").failures == 1
    assert not Circuit.objects.filter(name="tasks").exists()


def test_a_delegation_nobody_can_take_fails_for_good_and_changes_nothing(team, act, sent, liams_task):
    TeamMember.objects.exclude(role=Role.AGENT).update(active=False)
    action = act("delegate_task", {"skills": ["scheduling"]}, email=liams_task.email)
    with pytest.raises(ActionFailed, match="Nobody fits") as failure:
        run(action)
    assert failure.value.permanent
    assert LocalTask.objects.get(pk=liams_task.pk).assignee == team["liam"]
    assert sent == []


def test_a_closed_or_missing_task_is_not_delegated(team, act, liams_task):
    LocalTask.objects.filter(pk=liams_task.pk).update(status=TaskStatus.DONE)
    with pytest.raises(ActionFailed, match=f"Task {liams_task.pk} is done"):
        run(act("delegate_task", {"task_id": liams_task.pk}))
    with pytest.raises(IntegrationError, match="Task 999999 does not exist") as failure:
        run(act("delegate_task", {"task_id": 999999}))
    assert failure.value.permanent


def test_delegating_to_the_member_who_has_the_task_is_refused(team, act, liams_task):
    with pytest.raises(ActionFailed, match="already assigned to Liam OBrien"):
        run(act("delegate_task", {"task_id": liams_task.pk, "to": "liam@acme.example"}))


def test_undoing_a_delegation_gives_the_task_back_and_says_so(team, act, sent, liams_task):
    action = act("delegate_task", {"skills": ["billing"]}, email=liams_task.email)
    outcome = run(action)
    details = undo(action, outcome)
    assert LocalTask.objects.get(pk=liams_task.pk).assignee == team["liam"]
    assert details["assignee_id"] == team["liam"].pk
    _delegated, taken_back = sent
    assert taken_back.to == ["Olivia Hart <olivia@acme.example>"]
    assert taken_back.subject == "Delegation taken back: Refund for order 1234"
    assert taken_back.extra_headers["Message-ID"] == outbox.message_id_for(action.pk, "delegation-undo")


def test_undoing_a_delegation_of_a_new_task_leaves_it_unassigned(team, act, sent):
    action = act("delegate_task", {"skills": ["billing"]})
    undo(action, run(action))
    assert LocalTask.objects.get(action=action).assignee is None


def test_a_delegation_is_not_undone_once_the_task_moved_on(team, act, sent, liams_task):
    action = act("delegate_task", {"skills": ["billing"]}, email=liams_task.email)
    outcome = run(action)
    LocalTask.objects.filter(pk=liams_task.pk).update(assignee=team["ethan"])
    with pytest.raises(UndoRefused, match="now with Ethan Brooks"):
        undo(action, outcome)
    assert LocalTask.objects.get(pk=liams_task.pk).assignee == team["ethan"]
    assert len(sent) == 1


# --- mark_complete -----------------------------------------------------------------


def test_marking_the_email_done_and_undoing_it_restores_its_status(team, act, make_email):
    email = make_email(status=EmailStatus.ANALYSED)
    action = act("mark_complete", email=email)
    outcome = run(action)
    email.refresh_from_db()
    assert email.status == EmailStatus.PROCESSED
    assert email.completed_at is not None
    assert outcome.undo_data["previous_status"] == EmailStatus.ANALYSED
    undo(action, outcome)
    email.refresh_from_db()
    assert (email.status, email.completed_at) == (EmailStatus.ANALYSED, None)


def test_marking_done_twice_keeps_what_the_first_run_found(team, act, make_email):
    email = make_email(status=EmailStatus.ANALYSED)
    action = act("mark_complete", email=email)
    first, second = run(action), run(action)
    assert second.undo_data == first.undo_data
    undo(action, second)
    assert Email.objects.get(pk=email.pk).status == EmailStatus.ANALYSED


def test_an_email_reopened_since_is_not_reopened_again(team, act):
    action = act("mark_complete")
    outcome = run(action)
    Email.objects.filter(pk=action.email_id).update(completed_at=None, status=EmailStatus.RECEIVED)
    with pytest.raises(UndoRefused, match="reopened"):
        undo(action, outcome)


def test_marking_a_task_done_and_reopening_it(team, act, liams_task):
    action = act("mark_complete", {"target": "task", "task_id": liams_task.pk})
    outcome = run(action)
    liams_task.refresh_from_db()
    assert liams_task.status == TaskStatus.DONE
    assert liams_task.completed_at is not None
    undo(action, outcome)
    liams_task.refresh_from_db()
    assert (liams_task.status, liams_task.completed_at) == (TaskStatus.OPEN, None)


def test_marking_a_task_done_waits_for_the_task_system_and_marking_an_email_done_does_not(team, act, liams_task):
    later = timezone.now() + timezone.timedelta(minutes=1)
    Circuit.objects.create(name="tasks", state=CircuitState.OPEN, failures=5, opened_until=later)
    task = queue_action(act("mark_complete", {"target": "task", "task_id": liams_task.pk}), actor="test")
    email = queue_action(act("mark_complete", {"target": "email"}), actor="test")
    assert run_action(task.pk) == "circuit tasks open"
    assert run_action(email.pk) == "succeeded"


def test_a_cancelled_task_cannot_be_marked_done(team, act, liams_task):
    LocalTask.objects.filter(pk=liams_task.pk).update(status=TaskStatus.CANCELLED)
    with pytest.raises(ActionFailed, match="cancelled"):
        run(act("mark_complete", {"target": "task", "task_id": liams_task.pk}))


def test_a_task_already_done_is_left_done_by_undo(team, act, liams_task):
    finished = timezone.now()
    LocalTask.objects.filter(pk=liams_task.pk).update(status=TaskStatus.DONE, completed_at=finished)
    action = act("mark_complete", {"target": "task", "task_id": liams_task.pk})
    details = undo(action, run(action))
    liams_task.refresh_from_db()
    assert (liams_task.status, liams_task.completed_at) == (TaskStatus.DONE, finished)
    assert details["reopened"] is False


# --- escalate_issue ----------------------------------------------------------------


def test_escalation_raises_the_priority_and_tells_the_chain(team, act, sent):
    action = act("escalate_issue", {"reason": "Charged twice, third email"}, assignee=team["liam"])
    outcome = run(action)
    email = Email.objects.get(pk=action.email_id)
    assert (email.priority, email.escalation_level) == (Priority.URGENT, 1)
    [notice] = sent
    assert notice.to == ["Priya Natarajan <priya@acme.example>"]
    assert notice.cc == ["Marco Rossi <marco@acme.example>", "Dana Whitfield <dana@acme.example>"]
    assert notice.subject == "Escalated to level 1: Refund for order 1234"
    assert "Charged twice, third email" in notice.body
    assert outcome.result["priority"] == "Urgent"
    assert outcome.undo_data["previous_priority"] == Priority.NORMAL


def test_escalation_never_lowers_a_priority(team, act, sent, make_email):
    email = make_email(priority=Priority.URGENT)
    run(act("escalate_issue", {"reason": "Still waiting", "priority": "high"}, email=email))
    assert Email.objects.get(pk=email.pk).priority == Priority.URGENT


def test_escalating_twice_raises_the_level_once_and_sends_one_notice(team, act, sent):
    action = act("escalate_issue", {"reason": "Still waiting"})
    first, second = run(action), run(action)
    assert Email.objects.get(pk=action.email_id).escalation_level == 1
    assert first.undo_data == second.undo_data
    assert len(sent) == 1


def test_an_escalation_retried_after_a_mail_failure_is_not_escalated_twice(team, act, settings):
    action = act("escalate_issue", {"reason": "Still waiting"})
    settings.EMAIL_BACKEND = "tests.test_handlers_local.DownMailServer"
    with pytest.raises(IntegrationError):
        run(action)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    outcome = run(action)
    assert Email.objects.get(pk=action.email_id).escalation_level == 1
    assert outcome.undo_data["previous_level"] == 0
    assert len(mail.outbox) == 1


def test_an_escalation_at_the_top_raises_the_priority_and_says_nobody_is_above(team, act, sent):
    action = act("escalate_issue", {"reason": "Still waiting"}, assignee=team["dana"])
    outcome = run(action)
    assert Email.objects.get(pk=action.email_id).priority == Priority.URGENT
    assert outcome.result["note"] == "Nobody above to notify: the escalation chain is empty."
    assert outcome.result["notice"] is None
    assert sent == []


def test_undoing_an_escalation_restores_the_priority_and_tells_the_same_people(team, act, sent):
    action = act("escalate_issue", {"reason": "Still waiting", "priority": "high"}, assignee=team["liam"])
    undo(action, run(action))
    email = Email.objects.get(pk=action.email_id)
    assert (email.priority, email.escalation_level) == (Priority.NORMAL, 0)
    escalated, taken_back = sent
    assert taken_back.subject == "De-escalated from level 1: Refund for order 1234"
    assert (taken_back.to, taken_back.cc) == (escalated.to, escalated.cc)
    assert taken_back.extra_headers["Message-ID"] == outbox.message_id_for(action.pk, "escalation-undo")


def test_an_escalation_escalated_again_since_is_not_undone(team, act, sent):
    first = act("escalate_issue", {"reason": "Still waiting"})
    outcome = run(first)
    run(act("escalate_issue", {"reason": "Now they are calling"}, email=first.email))
    with pytest.raises(UndoRefused, match="level 2 now, 1 after this action"):
        undo(first, outcome)
    assert Email.objects.get(pk=first.email_id).escalation_level == 2


def test_the_escalation_is_in_the_audit_trail_with_what_undo_needs(team, act, sent):
    action = act("escalate_issue", {"reason": "Still waiting"})
    run(action)
    entry = AuditEntry.objects.for_object(action).get(event="email.escalated")
    assert (entry.details["previous_level"], entry.details["escalation_level"]) == (0, 1)


# --- archive_email -----------------------------------------------------------------


def test_archiving_sets_the_flag_and_undo_clears_it(team, act):
    action = act("archive_email")
    outcome = run(action)
    assert Email.objects.get(pk=action.email_id).archived_at is not None
    assert run(action).undo_data == outcome.undo_data
    undo(action, outcome)
    assert Email.objects.get(pk=action.email_id).archived_at is None


def test_an_email_taken_out_of_the_archive_since_is_not_undone(team, act):
    action = act("archive_email")
    outcome = run(action)
    Email.objects.filter(pk=action.email_id).update(archived_at=None)
    with pytest.raises(UndoRefused, match="taken out of the archive"):
        undo(action, outcome)


def test_an_email_archived_before_stays_archived_after_undo(team, act, make_email):
    earlier = timezone.now() - timezone.timedelta(days=3)
    email = make_email(archived_at=earlier)
    action = act("archive_email", email=email)
    undo(action, run(action))
    assert Email.objects.get(pk=email.pk).archived_at == earlier


# --- Actions that need an email ----------------------------------------------------


@pytest.mark.parametrize(
    ("action_type", "params"),
    [
        ("archive_email", {}),
        ("mark_complete", {}),
        ("escalate_issue", {"reason": "Still waiting"}),
        ("upload_file", {}),
        ("delegate_task", {"skills": ["billing"]}),
    ],
)
def test_an_action_about_an_email_fails_for_good_without_one(team, act, action_type, params):
    with pytest.raises(ActionFailed, match="needs an email") as failure:
        run(act(action_type, params, email=None))
    assert failure.value.permanent
