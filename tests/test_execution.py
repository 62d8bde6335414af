"""The executor in one process: claiming, retries, dead letters, circuits, guard rails, the kill switch, undo.

The handler under test is a stand-in registered for archive_email, so each
path can be driven exactly; the real handlers have suites of their own, and
tests/test_workers.py runs all of it in real worker processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone
from django_q.brokers import get_broker

from actions import handlers
from actions.executor import (
    action_for_undo_token,
    backoff,
    pause_execution,
    queue_action,
    resume_execution,
    retry_action,
    run_action,
    undo_action,
    undo_token,
)
from actions.handlers import ActionFailed, Handler, Outcome, Params, UndoRefused
from actions.models import Action, ActionStatus, AuditEntry, ExecutionSwitch, Priority
from actions.proposals import InvalidProposal, propose_action
from actions.sweeper import sweep
from actions.transitions import IllegalTransition, transition_action
from integrations.calls import calling
from integrations.errors import IntegrationError
from integrations.models import CallOutcome, Circuit, CircuitState, IntegrationCalls
from tests.conftest import REPLY

S = ActionStatus


class StandInParams(Params):
    to: list[str] = []


class StandIn(Handler):
    """Does what the test tells it: succeed, or raise what it was given."""

    type = "archive_email"
    params = StandInParams
    capability = "jira"
    undoable = True

    def __init__(self) -> None:
        self.raises: list[Exception] = []
        # Integrations it calls, and which answer, before it raises or succeeds.
        self.answers: list[str] = []
        self.calls = 0
        self.undone = 0

    @property
    def sends_mail(self) -> bool:
        return True

    def recipients(self, action, params) -> list[str]:
        return params.to

    def execute(self, action, params) -> Outcome:
        self.calls += 1
        for name in self.answers:
            with calling(name):
                pass
        if self.raises:
            raise self.raises.pop(0)
        return Outcome(result={"done": self.calls}, undo_data={"undo": "me"})

    def undo(self, action, params) -> dict:
        if action.undo_data != {"undo": "me"}:
            raise UndoRefused("lost what undo needs")
        self.undone += 1
        return {"undone": True}


@pytest.fixture
def stand_in(monkeypatch):
    handler = StandIn()
    handlers._load()
    monkeypatch.setitem(handlers._REGISTRY, "archive_email", handler)
    return handler


@pytest.fixture(autouse=True)
def _execution_settings(settings):
    settings.SEND_DELAY_SECONDS = 0
    settings.RETRY_LIMIT = 3
    settings.RETRY_LIMITS = {}
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    settings.CIRCUIT_COOLDOWN_SECONDS = 60
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.ALLOWED_RECIPIENT_DOMAINS = []
    settings.RATE_LIMITS_PER_HOUR = {}


@pytest.fixture
def queued(make_email, stand_in):
    def make(**params) -> Action:
        action = propose_action("archive_email", email=make_email(), params=params)
        return queue_action(action, actor="test")

    return make


def status(action: Action) -> str:
    return Action.objects.get(pk=action.pk).status


def events(action: Action) -> list[str]:
    return list(AuditEntry.objects.for_object(action).order_by("id").values_list("event", flat=True))


# --- Queueing -------------------------------------------------------------------


def test_queueing_enqueues_only_after_the_commit(make_email, stand_in, django_capture_on_commit_callbacks):
    broker = get_broker()
    broker.purge_queue()
    action = propose_action("archive_email", email=make_email())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queue_action(action, actor="test")
        assert broker.queue_size() == 0
    assert len(callbacks) == 1
    callbacks[0]()
    assert broker.queue_size() == 1
    assert Action.objects.get(pk=action.pk).enqueued_at is not None
    broker.purge_queue()


def test_an_urgent_action_goes_to_the_urgent_lane(make_email, stand_in, django_capture_on_commit_callbacks):
    urgent, normal = get_broker("urgent"), get_broker()
    urgent.purge_queue()
    normal.purge_queue()
    action = propose_action("archive_email", email=make_email(), priority=Priority.URGENT)
    with django_capture_on_commit_callbacks(execute=True):
        queue_action(action, actor="test")
    assert (urgent.queue_size(), normal.queue_size()) == (1, 0)
    urgent.purge_queue()


def test_a_send_waits_out_the_delay_window_and_can_be_cancelled_inside_it(make_email, settings):
    settings.SEND_DELAY_SECONDS = 60
    action = propose_action("send_reply", email=make_email(), params=REPLY)
    before = timezone.now()
    queue_action(action, actor="test")
    stored = Action.objects.get(pk=action.pk)
    assert before + timedelta(seconds=59) < stored.next_attempt_at < before + timedelta(seconds=62)
    assert stored.enqueued_at is None
    assert run_action(action.pk) == "not due"
    transition_action(stored, S.CANCELLED, actor="test", reason="changed my mind")
    assert run_action(action.pk) == "not queued"


# --- Running --------------------------------------------------------------------


def test_a_queued_action_runs_once_and_records_its_outcome(queued, stand_in):
    action = queued()
    assert run_action(action.pk) == "succeeded"
    assert run_action(action.pk) == "not queued"  # a redelivered task does nothing
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.result, stored.undo_data) == (
        S.SUCCEEDED,
        1,
        {"done": 1},
        {"undo": "me"},
    )
    assert stand_in.calls == 1
    assert events(action)[-2:] == ["action.running", "action.succeeded"]


def test_a_transient_error_is_retried_later_with_backoff(queued, stand_in):
    action = queued()
    stand_in.raises = [IntegrationError("timed out")]
    before = timezone.now()
    assert run_action(action.pk) == "failed"
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.last_error) == (S.FAILED, 1, "timed out")
    # 30 s base, jittered to between 15 and 30 s.
    assert before + timedelta(seconds=14) < stored.next_attempt_at < before + timedelta(seconds=31)


def test_retries_used_up_put_the_action_in_dead(queued, stand_in, settings):
    settings.CIRCUIT_FAILURE_THRESHOLD = 10  # this test is about retries, not the circuit
    action = queued()
    stand_in.raises = [IntegrationError("down")] * 3
    for expected in ["failed", "failed", "dead"]:
        assert run_action(action.pk) == expected
        Action.objects.filter(pk=action.pk, status=S.FAILED).update(next_attempt_at=timezone.now())
        sweep()
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.last_error) == (S.DEAD, 3, "down")
    assert AuditEntry.objects.for_object(action).get(event="action.dead").details["reason"] == (
        "gave up after 3 attempts"
    )


def test_a_permanent_error_goes_to_dead_at_once(queued, stand_in):
    action = queued()
    stand_in.raises = [IntegrationError("401 Unauthorized", permanent=True)]
    assert run_action(action.pk) == "dead"
    assert Action.objects.get(pk=action.pk).last_error == "401 Unauthorized"


def test_an_unexpected_exception_is_retried_not_lost(queued, stand_in):
    action = queued()
    stand_in.raises = [ZeroDivisionError("oops")]
    assert run_action(action.pk) == "failed"
    assert Action.objects.get(pk=action.pk).last_error == "ZeroDivisionError: oops"


def test_a_dead_action_can_be_retried_with_fresh_attempts(queued, stand_in, alice):
    action = queued()
    stand_in.raises = [ActionFailed("no such project")]
    assert run_action(action.pk) == "dead"
    retry_action(Action.objects.get(pk=action.pk), acting_user=alice)
    assert Action.objects.get(pk=action.pk).attempts == 0
    assert run_action(action.pk) == "succeeded"


def test_the_backoff_grows_and_is_capped(settings):
    settings.RETRY_BASE_SECONDS, settings.RETRY_MAX_SECONDS = 10, 100
    assert timedelta(seconds=5) <= backoff(1) <= timedelta(seconds=10)
    assert timedelta(seconds=20) <= backoff(3) <= timedelta(seconds=40)
    assert timedelta(seconds=50) <= backoff(12) <= timedelta(seconds=100)
    assert backoff(1, retry_after=500) == timedelta(seconds=500)


# --- Circuit breaker ------------------------------------------------------------


def test_a_circuit_opens_and_actions_wait_without_spending_attempts(queued, stand_in):
    first, second, waiting = queued(), queued(), queued()
    stand_in.raises = [IntegrationError("503"), IntegrationError("503")]
    run_action(first.pk)
    run_action(second.pk)
    circuit = Circuit.objects.get(name="jira")
    assert circuit.state == CircuitState.OPEN
    assert run_action(waiting.pk) == "circuit jira open"
    stored = Action.objects.get(pk=waiting.pk)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == (S.QUEUED, 0, circuit.opened_until)
    assert stand_in.calls == 2


def test_a_circuit_half_opens_after_the_cooldown_and_closes_on_success(queued, stand_in):
    action = queued()
    Circuit.objects.create(name="jira", state=CircuitState.OPEN, failures=5, opened_until=timezone.now())
    assert run_action(action.pk) == "succeeded"
    circuit = Circuit.objects.get(name="jira")
    assert (circuit.state, circuit.failures) == (CircuitState.CLOSED, 0)


def test_a_failure_while_half_open_opens_it_again(queued, stand_in):
    action = queued()
    Circuit.objects.create(name="jira", state=CircuitState.HALF_OPEN, failures=5)
    stand_in.raises = [IntegrationError("still down")]
    run_action(action.pk)
    assert Circuit.objects.get(name="jira").state == CircuitState.OPEN


def counted(name: str) -> dict[str, int]:
    return dict(IntegrationCalls.objects.filter(capability=name).values_list("outcome", "count"))


def test_a_failure_is_charged_to_the_integration_that_failed_not_the_handlers(queued, stand_in):
    stand_in.also_uses = ("chat",)
    stand_in.raises = [
        IntegrationError("Slack 503", capability="chat"),
        IntegrationError("Slack 503", capability="chat"),
    ]
    run_action(queued().pk)
    run_action(queued().pk)
    assert Circuit.objects.get(name="chat").state == CircuitState.OPEN
    assert not Circuit.objects.filter(name="jira").exists()
    assert (counted("chat"), counted("jira")) == ({CallOutcome.FAILURE: 2}, {})


def test_an_action_waits_for_the_last_of_its_circuits_to_reopen(queued, stand_in):
    stand_in.also_uses = ("chat",)
    soon, later = timezone.now() + timedelta(seconds=30), timezone.now() + timedelta(seconds=90)
    Circuit.objects.create(name="jira", state=CircuitState.OPEN, failures=2, opened_until=soon)
    Circuit.objects.create(name="chat", state=CircuitState.OPEN, failures=2, opened_until=later)
    Circuit.objects.create(name="mail", state=CircuitState.OPEN, failures=2, opened_until=later + timedelta(hours=1))
    action = queued()
    assert run_action(action.pk) == "circuit jira, chat open"
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == (S.QUEUED, 0, later)
    # One it does not use holds nothing.
    Circuit.objects.exclude(name="mail").delete()
    assert run_action(queued().pk) == "succeeded"


def test_success_closes_only_the_circuits_of_integrations_that_answered(queued, stand_in):
    stand_in.also_uses = ("chat",)
    Circuit.objects.create(name="chat", state=CircuitState.HALF_OPEN, failures=2)
    # Chat not called (nothing to post, or already posted): its circuit and counts are left as they were.
    assert run_action(queued().pk) == "succeeded"
    assert Circuit.objects.get(name="chat").state == CircuitState.HALF_OPEN
    assert (counted("jira"), counted("chat")) == ({CallOutcome.SUCCESS: 1}, {})
    stand_in.answers = ["chat"]
    assert run_action(queued().pk) == "succeeded"
    assert (Circuit.objects.get(name="chat").state, counted("chat")) == (CircuitState.CLOSED, {CallOutcome.SUCCESS: 1})


def test_an_integration_that_answered_before_another_failed_counts_as_working(queued, stand_in):
    stand_in.also_uses = ("mail",)
    Circuit.objects.create(name="mail", state=CircuitState.HALF_OPEN, failures=2)
    stand_in.answers = ["mail"]
    stand_in.raises = [IntegrationError("Jira 503")]
    assert run_action(queued().pk) == "failed"
    assert (Circuit.objects.get(name="mail").state, counted("mail")) == (CircuitState.CLOSED, {CallOutcome.SUCCESS: 1})
    assert counted("jira") == {CallOutcome.FAILURE: 1}


# --- Guard rails ---------------------------------------------------------------------


def test_mail_to_a_domain_not_allowed_is_refused_and_recorded(queued, stand_in):
    action = queued(to=["someone@elsewhere.example", "ok@acme.example"])
    assert run_action(action.pk) == "refused"
    stored = Action.objects.get(pk=action.pk)
    assert stored.status == S.DEAD
    assert stored.last_error == "Refused: recipients outside the allowed domains: someone@elsewhere.example"
    assert stand_in.calls == 0
    assert AuditEntry.objects.for_object(action).get(event="action.dead").actor_label == "guard"


def test_the_emails_own_sender_and_allowed_domains_are_accepted(queued, stand_in, settings):
    settings.ALLOWED_RECIPIENT_DOMAINS = ["partner.example"]
    action = queued(to=["a@partner.example", "b@sub.acme.example"])
    sender = Action.objects.get(pk=action.pk).email.from_address
    other = queued(to=[sender])
    other.email.from_address = sender
    Action.objects.filter(pk=other.pk).update(email=action.email)
    assert run_action(action.pk) == "succeeded"
    assert run_action(other.pk) == "succeeded"


def test_a_rate_limit_makes_the_action_wait_and_gives_its_attempt_back(queued, stand_in, settings):
    settings.RATE_LIMITS_PER_HOUR = {"archive_email": 1}
    first, second = queued(), queued()
    assert run_action(first.pk) == "succeeded"
    assert run_action(second.pk) == "rate limited"
    stored = Action.objects.get(pk=second.pk)
    assert (stored.status, stored.attempts) == (S.QUEUED, 0)
    started = Action.objects.get(pk=first.pk).started_at
    assert stored.next_attempt_at == started + timedelta(hours=1)
    assert "rate limit of 1 archive_email per hour" in stored.last_error


def test_a_per_domain_rate_limit_counts_sends_to_that_domain(queued, stand_in, settings):
    settings.DOMAIN_RATE_LIMIT_PER_HOUR = 1
    first, second = queued(to=["a@acme.example"]), queued(to=["b@acme.example"])
    assert run_action(first.pk) == "succeeded"
    assert run_action(second.pk) == "rate limited"
    assert "to acme.example" in Action.objects.get(pk=second.pk).last_error


def test_proposing_more_than_the_limit_per_email_is_refused_and_audited(make_email, stand_in, settings):
    settings.MAX_ACTIONS_PER_EMAIL = 2
    email = make_email()
    propose_action("archive_email", email=email)
    propose_action("archive_email", email=email)
    with pytest.raises(InvalidProposal, match="already has 2 actions"):
        propose_action("archive_email", email=email)
    assert Action.objects.filter(email=email).count() == 2
    assert AuditEntry.objects.for_object(email).get(event="action.refused").details["type"] == "archive_email"


def test_bad_parameters_are_refused_at_proposal_naming_the_field(make_email):
    with pytest.raises(InvalidProposal) as caught:
        propose_action("send_reply", email=make_email(), params={"body": "Hi", "bcc": ["x@evil.example"]})
    assert caught.value.field == "params.bcc"
    assert not Action.objects.exists()


# --- Kill switch ---------------------------------------------------------------------


def test_while_paused_nothing_runs_and_nothing_is_lost(queued, stand_in, alice, django_capture_on_commit_callbacks):
    normal, urgent = queued(), queued()
    Action.objects.filter(pk=urgent.pk).update(priority=Priority.URGENT)
    pause_execution(acting_user=alice, reason="incident")
    assert ExecutionSwitch.is_paused()
    assert run_action(normal.pk) == "paused"
    assert sweep()["leases_expired"] == 0
    assert status(normal) == status(urgent) == S.QUEUED
    broker = get_broker()
    broker.purge_queue()
    get_broker("urgent").purge_queue()
    with django_capture_on_commit_callbacks(execute=True):
        assert resume_execution(acting_user=alice) == 2
    # Urgent first, on its own lane.
    assert (get_broker("urgent").queue_size(), broker.queue_size()) == (1, 1)
    assert run_action(normal.pk) == "succeeded"
    assert AuditEntry.objects.filter(event__in=["execution.paused", "execution.resumed"]).count() == 2
    broker.purge_queue()
    get_broker("urgent").purge_queue()


# --- Sweeper ----------------------------------------------------------------------------


def test_the_sweeper_takes_back_an_action_whose_worker_died(queued, stand_in):
    action = queued()
    action = Action.objects.get(pk=action.pk)
    transition_action(action, S.RUNNING, actor="worker", lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert sweep()["leases_expired"] == 1
    assert status(action) == S.QUEUED
    assert run_action(action.pk) == "succeeded"


def test_the_sweeper_enqueues_a_send_once_its_delay_is_over(make_email, settings, django_capture_on_commit_callbacks):
    settings.SEND_DELAY_SECONDS = 60
    broker = get_broker()
    broker.purge_queue()
    action = queue_action(propose_action("send_reply", email=make_email(), params=REPLY), actor="test")
    assert sweep()["enqueued"] == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(now=timezone.now() + timedelta(seconds=61))["enqueued"] == 1
    assert broker.queue_size() == 1
    assert Action.objects.get(pk=action.pk).enqueued_at is not None
    broker.purge_queue()


# --- Undo ----------------------------------------------------------------------------------


def test_undo_reverses_once_and_audits(queued, stand_in, alice):
    action = queued()
    run_action(action.pk)
    action = Action.objects.get(pk=action.pk)
    assert undo_action(action, acting_user=alice) == {"undone": True}
    assert status(action) == S.UNDONE
    with pytest.raises(UndoRefused, match="already undone"):
        undo_action(Action.objects.get(pk=action.pk), acting_user=alice)
    assert stand_in.undone == 1
    assert "action.undo_done" in events(action)


def test_an_undo_that_cannot_be_done_says_why_and_changes_nothing(queued, stand_in, alice):
    action = queued()
    run_action(action.pk)
    Action.objects.filter(pk=action.pk).update(undo_data={})
    with pytest.raises(UndoRefused, match="lost what undo needs"):
        undo_action(Action.objects.get(pk=action.pk), acting_user=alice)
    assert status(action) == S.SUCCEEDED
    assert AuditEntry.objects.for_object(action).get(event="action.undo_refused").details == {
        "reason": "lost what undo needs"
    }


def test_an_action_that_has_not_run_cannot_be_undone(make_email, stand_in):
    action = propose_action("archive_email", email=make_email())
    with pytest.raises(UndoRefused, match="only a succeeded action can be undone"):
        undo_action(action)


def test_an_undo_token_works_once_and_expires(queued, stand_in, settings):
    action = queued()
    run_action(action.pk)
    token = undo_token(Action.objects.get(pk=action.pk))
    assert action_for_undo_token(token).pk == action.pk
    with pytest.raises(UndoRefused, match="not valid"):
        action_for_undo_token(token + "x")
    settings.UNDO_TOKEN_MAX_AGE = timedelta(seconds=-1)
    with pytest.raises(UndoRefused, match="expired"):
        action_for_undo_token(token)
    settings.UNDO_TOKEN_MAX_AGE = timedelta(hours=1)
    undo_action(action_for_undo_token(token))
    with pytest.raises(UndoRefused, match="already undone"):
        undo_action(action_for_undo_token(token))
    forged = signing.TimestampSigner(salt="another.salt").sign(f"{action.pk}:{action.idempotency_key}")
    with pytest.raises(UndoRefused, match="not valid"):
        action_for_undo_token(forged)


def test_a_proposed_action_cannot_be_retried_past_its_approval(make_action, alice):
    action = make_action("send_reply")
    with pytest.raises(IllegalTransition, match="only failed or dead actions can be retried"):
        retry_action(action, acting_user=alice)
    assert Action.objects.get(pk=action.pk).status == S.PROPOSED
