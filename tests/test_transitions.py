"""The action state machine: the table of allowed moves, the compare-and-set, and proposing actions."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from actions.models import Action, ActionStatus, AuditEntry
from actions.proposals import InvalidProposal, propose_action
from actions.transitions import (
    TRANSITIONS,
    IllegalTransition,
    TransitionConflict,
    can_transition,
    transition_action,
)
from tests.concurrency import run_at_once
from tests.conftest import REPLY

S = ActionStatus

ALLOWED = [(source, target) for source, targets in TRANSITIONS.items() for target in sorted(targets)]
FORBIDDEN = [(source, target) for source in S for target in S if target not in TRANSITIONS[source]]

# A moment safely before any test runs, so that "status_changed_at moved" is unambiguous.
LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def _ids(pairs):
    return [f"{source.value}-to-{target.value}" for source, target in pairs]


def _put_in(action: Action, status: ActionStatus) -> Action:
    """Set the action's status behind the state machine's back, as test setup."""
    Action.objects.filter(pk=action.pk).update(status=status, status_changed_at=LONG_AGO, updated_at=LONG_AGO)
    action.refresh_from_db()
    return action


def _trail(action: Action) -> list[AuditEntry]:
    """The action's audit entries after its proposal, oldest first."""
    return list(AuditEntry.objects.for_object(action).exclude(event="action.proposed").order_by("created_at", "id"))


@pytest.fixture
def action(make_action):
    return make_action()


# --- The table ---------------------------------------------------------------


def test_the_table_has_a_row_for_every_status():
    assert set(TRANSITIONS) == set(S)
    for targets in TRANSITIONS.values():
        assert targets <= set(S)


def test_no_status_moves_to_itself():
    assert all(status not in targets for status, targets in TRANSITIONS.items())


def test_the_happy_path_of_the_design_is_allowed_in_order():
    path = [S.PROPOSED, S.PENDING_APPROVAL, S.APPROVED, S.QUEUED, S.RUNNING, S.SUCCEEDED, S.UNDONE]
    for current, wanted in itertools.pairwise(path):
        assert can_transition(current, wanted), f"{current} -> {wanted}"


def test_only_the_end_states_are_terminal():
    terminal = {status for status, targets in TRANSITIONS.items() if not targets}
    assert terminal == {S.REJECTED, S.EXPIRED, S.CANCELLED, S.UNDONE}


@pytest.mark.parametrize("status", list(S), ids=[s.value for s in S])
def test_an_action_knows_whether_its_status_is_terminal(status):
    assert Action(status=status).is_terminal == (status in {S.REJECTED, S.EXPIRED, S.CANCELLED, S.UNDONE})


@pytest.mark.parametrize(("current", "wanted"), ALLOWED + FORBIDDEN, ids=_ids(ALLOWED + FORBIDDEN))
def test_can_transition_agrees_with_the_table_for_plain_strings(current, wanted):
    assert can_transition(current.value, wanted.value) == ((current, wanted) in ALLOWED)


def test_can_transition_refuses_a_status_that_does_not_exist():
    with pytest.raises(ValueError):
        can_transition("queued", "launched")


# --- Allowed moves -----------------------------------------------------------


@pytest.mark.parametrize(("current", "wanted"), ALLOWED, ids=_ids(ALLOWED))
def test_it_makes_every_allowed_move_and_audits_it(action, alice, current, wanted):
    _put_in(action, current)
    before = timezone.now()

    returned = transition_action(action, wanted, acting_user=alice, reason="test says so")

    assert returned is action
    assert action.status == wanted
    stored = Action.objects.get(pk=action.pk)
    assert stored.status == wanted
    assert stored.status_changed_at >= before > LONG_AGO
    assert stored.updated_at == stored.status_changed_at
    assert action.status_changed_at == stored.status_changed_at

    [entry] = _trail(action)
    assert entry.event == f"action.{wanted.value}"
    assert entry.details == {"from": current.value, "to": wanted.value, "reason": "test says so"}
    assert entry.actor == alice
    assert entry.actor_label == "alice"
    assert entry.target_repr == str(action)


def test_it_accepts_the_wanted_status_as_a_plain_string(action):
    transition_action(action, "queued", actor="policy")

    assert Action.objects.get(pk=action.pk).status == S.QUEUED
    [entry] = _trail(action)
    assert (entry.event, entry.actor, entry.actor_label) == ("action.queued", None, "policy")


def test_it_walks_the_whole_happy_path_with_one_entry_per_step(action):
    path = [S.PENDING_APPROVAL, S.APPROVED, S.QUEUED, S.RUNNING, S.SUCCEEDED, S.UNDONE]
    for wanted in path:
        transition_action(action, wanted, actor="worker")

    assert Action.objects.get(pk=action.pk).status == S.UNDONE
    assert [entry.event for entry in _trail(action)] == [f"action.{status.value}" for status in path]
    assert [entry.details["from"] for entry in _trail(action)] == [S.PROPOSED.value] + [s.value for s in path[:-1]]


def test_caller_details_are_added_to_the_entry_but_cannot_rewrite_the_move(action):
    transition_action(
        action,
        S.QUEUED,
        actor="policy",
        reason="auto-approved",
        details={"policy": "small replies", "from": "approved", "to": "succeeded", "reason": "forged"},
    )

    [entry] = _trail(action)
    assert entry.details == {"policy": "small replies", "from": "proposed", "to": "queued", "reason": "auto-approved"}


def test_secrets_in_caller_details_are_masked_in_the_entry(action):
    transition_action(action, S.QUEUED, actor="policy", details={"headers": {"Authorization": "Bearer abc123"}})

    [entry] = _trail(action)
    assert entry.details["headers"] == {"Authorization": "********"}
    assert "abc123" not in str(entry.details)


# --- Forbidden moves ---------------------------------------------------------


@pytest.mark.parametrize(("current", "wanted"), FORBIDDEN, ids=_ids(FORBIDDEN))
def test_it_refuses_every_move_the_table_does_not_allow(action, current, wanted):
    _put_in(action, current)

    with pytest.raises(IllegalTransition) as caught:
        transition_action(action, wanted, actor="test")

    message = str(caught.value)
    assert f"Action {action.pk} " in message
    assert f"'{current.value}'" in message
    assert f"'{wanted.value}'" in message
    assert (caught.value.action_id, caught.value.current, caught.value.wanted) == (action.pk, current, wanted)
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.status_changed_at, stored.updated_at) == (current, LONG_AGO, LONG_AGO)
    assert action.status == current
    assert _trail(action) == []


def test_it_refuses_succeeded_to_queued(action):
    _put_in(action, S.SUCCEEDED)

    with pytest.raises(IllegalTransition, match=rf"Action {action.pk} cannot go from 'succeeded' to 'queued'"):
        transition_action(action, S.QUEUED)

    assert Action.objects.get(pk=action.pk).status == S.SUCCEEDED


def test_it_refuses_a_status_that_does_not_exist(action):
    with pytest.raises(ValueError):
        transition_action(action, "launched")

    assert Action.objects.get(pk=action.pk).status == S.PROPOSED
    assert _trail(action) == []


def test_it_checks_the_table_before_looking_at_changes(action):
    # An illegal move is reported as such even when the changes are bad too.
    _put_in(action, S.CANCELLED)

    with pytest.raises(IllegalTransition):
        transition_action(action, S.QUEUED, colour="blue")


# --- Stale status (compare-and-set) ------------------------------------------


def test_it_refuses_to_move_an_action_someone_else_moved_first(action):
    _put_in(action, S.QUEUED)
    # Another worker claims it; our copy still says queued.
    Action.objects.filter(pk=action.pk).update(status=S.RUNNING)

    with pytest.raises(TransitionConflict) as caught:
        transition_action(action, S.CANCELLED, actor="test")

    assert f"Action {action.pk} is no longer 'queued' (it is now 'running')" in str(caught.value)
    assert "'cancelled'" in str(caught.value)
    assert (caught.value.action_id, caught.value.current, caught.value.wanted) == (action.pk, "running", S.CANCELLED)
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.status_changed_at) == (S.RUNNING, LONG_AGO)
    assert action.status == S.QUEUED
    assert _trail(action) == []


def test_it_refuses_even_when_the_other_writer_made_the_same_move(action):
    _put_in(action, S.QUEUED)
    Action.objects.filter(pk=action.pk).update(status=S.RUNNING, attempts=1)

    with pytest.raises(TransitionConflict):
        transition_action(action, S.RUNNING, actor="test", attempts=5)

    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.status_changed_at) == (S.RUNNING, 1, LONG_AGO)
    assert _trail(action) == []


def test_it_reports_a_deleted_action_as_a_conflict(action):
    Action.objects.filter(pk=action.pk).delete()

    with pytest.raises(TransitionConflict, match="it is now 'deleted'") as caught:
        transition_action(action, S.QUEUED, actor="test")

    assert caught.value.current == ""
    assert AuditEntry.objects.filter(event="action.queued").count() == 0


# --- Changes made with the move ----------------------------------------------


def test_it_sets_the_changes_in_the_same_update_as_the_status(action):
    _put_in(action, S.RUNNING)
    retry_at = timezone.now() + timedelta(minutes=5)

    with CaptureQueriesContext(connection) as queries:
        transition_action(
            action, S.FAILED, actor="worker", attempts=3, last_error="SMTP 451: try later", next_attempt_at=retry_at
        )

    updates = [
        q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE") and "actions_action" in q["sql"]
    ]
    assert len(updates) == 1
    assert all(column in updates[0] for column in ('"status"', '"attempts"', '"last_error"', '"next_attempt_at"'))
    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.last_error, stored.next_attempt_at) == (
        S.FAILED,
        3,
        "SMTP 451: try later",
        retry_at,
    )
    assert (action.attempts, action.last_error, action.next_attempt_at) == (3, "SMTP 451: try later", retry_at)


def test_it_sets_every_kind_of_change_a_transition_may_make(action):
    _put_in(action, S.QUEUED)
    lease = timezone.now() + timedelta(minutes=10)
    transition_action(action, S.RUNNING, actor="worker", attempts=1, lease_expires_at=lease, scheduled_for=lease)
    transition_action(
        action, S.SUCCEEDED, actor="worker", lease_expires_at=None, result={"sent": True}, undo_data={"outbox_id": 7}
    )

    stored = Action.objects.get(pk=action.pk)
    assert stored.status == S.SUCCEEDED
    assert (stored.attempts, stored.lease_expires_at, stored.scheduled_for) == (1, None, lease)
    assert (stored.result, stored.undo_data) == ({"sent": True}, {"outbox_id": 7})


@pytest.mark.parametrize("field", ["colour", "status", "status_changed_at", "type", "params", "priority"])
def test_it_refuses_changes_to_columns_a_transition_may_not_set(action, field):
    with pytest.raises(TypeError, match=field):
        transition_action(action, S.QUEUED, actor="test", **{field: "x"})

    stored = Action.objects.get(pk=action.pk)
    assert stored.status == S.PROPOSED
    assert getattr(stored, field, None) != "x"
    assert action.status == S.PROPOSED
    assert _trail(action) == []


# --- Atomicity with the audit entry ------------------------------------------


def _failing_record_audit(*args, **kwargs):
    raise RuntimeError("the audit table is gone")


def test_it_rolls_the_move_back_when_the_audit_entry_cannot_be_written(action, monkeypatch):
    _put_in(action, S.QUEUED)
    monkeypatch.setattr("actions.transitions.record_audit", _failing_record_audit)

    with pytest.raises(RuntimeError, match="audit table is gone"):
        transition_action(action, S.RUNNING, actor="worker", attempts=1)

    stored = Action.objects.get(pk=action.pk)
    assert (stored.status, stored.attempts, stored.status_changed_at) == (S.QUEUED, 0, LONG_AGO)
    assert action.status == S.QUEUED
    assert action.attempts == 0
    assert _trail(action) == []


@pytest.mark.django_db(transaction=True)
def test_it_rolls_the_move_back_when_the_audit_fails_outside_any_test_transaction(transactional_db, monkeypatch):
    # Without the test's own wrapping transaction: the function's atomic block is the real one.
    action = _put_in(propose_action("send_reply", params=REPLY), S.QUEUED)
    monkeypatch.setattr("actions.transitions.record_audit", _failing_record_audit)

    with pytest.raises(RuntimeError):
        transition_action(action, S.RUNNING, actor="worker")

    assert Action.objects.get(pk=action.pk).status == S.QUEUED
    assert _trail(action) == []


def test_the_move_and_its_entry_go_back_together_with_the_callers_transaction(action):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        transition_action(action, S.QUEUED, actor="policy")
        1 / 0  # noqa: B018

    assert Action.objects.get(pk=action.pk).status == S.PROPOSED
    assert _trail(action) == []


# --- Concurrency ---------------------------------------------------------------

ROUNDS = 8


def _race(action_id: int, targets: list[ActionStatus]) -> list[object]:
    """Let one thread per target load the action, wait for the others, then move it; return each outcome."""

    def attempt(index: int, wanted: ActionStatus):
        def work(ready):
            mine = Action.objects.get(pk=action_id)
            ready()
            transition_action(mine, wanted, actor=f"thread-{index}")
            return wanted

        return work

    return run_at_once(*(attempt(index, wanted) for index, wanted in enumerate(targets)))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "targets",
    [
        [S.RUNNING, S.RUNNING],
        [S.RUNNING, S.CANCELLED],
        [S.CANCELLED, S.RUNNING, S.CANCELLED, S.RUNNING],
    ],
    ids=["both-to-running", "running-vs-cancelled", "four-threads"],
)
def test_of_concurrent_moves_exactly_one_wins(transactional_db, targets):
    for _ in range(ROUNDS):
        action = _put_in(propose_action("send_reply", params=REPLY, source="ai"), S.QUEUED)

        outcomes = _race(action.pk, targets)

        winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, ActionStatus)]
        losers = [outcome for outcome in outcomes if not isinstance(outcome, ActionStatus)]
        assert len(winners) == 1, outcomes
        [winner] = winners
        assert all(isinstance(loser, TransitionConflict) for loser in losers), outcomes
        assert all(loser.current == targets[winner] for loser in losers)
        assert Action.objects.get(pk=action.pk).status == targets[winner]
        [entry] = _trail(action)
        assert (entry.event, entry.actor_label) == (f"action.{targets[winner].value}", f"thread-{winner}")
        assert entry.details["from"] == S.QUEUED.value


# --- Proposing ---------------------------------------------------------------


def test_it_stores_a_proposal_in_proposed_and_audits_it(make_email, bob):
    email = make_email()

    action = propose_action(
        "create_task",
        email=email,
        params={"title": "Call back", "description": "Log in with Bearer hunter2hunter2"},
        source="ai",
        priority=30,
        confidence=0.75,
        rationale="The customer asked for a call.",
        context={"category": "support"},
        acting_user=bob,
    )

    stored = Action.objects.get(pk=action.pk)
    assert stored.status == S.PROPOSED
    assert (stored.type, stored.email, stored.source, stored.priority, stored.confidence) == (
        "create_task",
        email,
        "ai",
        30,
        0.75,
    )
    # The action needs it; only the trail masks it.
    assert stored.params == {"title": "Call back", "description": "Log in with Bearer hunter2hunter2"}
    assert (stored.rationale, stored.context, stored.created_by) == (
        "The customer asked for a call.",
        {"category": "support"},
        bob,
    )
    assert stored.idempotency_key
    [entry] = AuditEntry.objects.for_object(stored)
    assert (entry.event, entry.actor, entry.actor_label) == ("action.proposed", bob, "bob")
    assert entry.details == {
        "type": "create_task",
        "source": "ai",
        "params": {"title": "Call back", "description": "Log in with ********"},
        "confidence": 0.75,
    }


@pytest.mark.parametrize(("source", "label"), [("ai", "ai"), ("rule", "rule"), ("api", "api")])
def test_a_proposal_without_a_person_is_audited_under_its_source(source, label, db):
    action = propose_action("archive_email", source=source)

    [entry] = AuditEntry.objects.for_object(action)
    assert (entry.actor, entry.actor_label) == (None, label)
    assert action.created_by is None


def test_a_proposal_by_an_anonymous_user_has_no_creator(db):
    action = propose_action("archive_email", acting_user=AnonymousUser())

    assert Action.objects.get(pk=action.pk).created_by is None
    entry = AuditEntry.objects.for_object(action).get()
    assert (entry.actor, entry.actor_label) == (None, "anonymous")


@pytest.mark.parametrize("confidence", [0, 0.0, 0.5, 1, 1.0, None])
def test_it_accepts_every_confidence_from_zero_to_one(confidence, db):
    action = propose_action("send_reply", params=REPLY, confidence=confidence)

    assert Action.objects.get(pk=action.pk).confidence == confidence


BAD_PROPOSALS = [
    ({"type": "launch_missiles"}, "type"),
    ({"type": ""}, "type"),
    ({"type": None}, "type"),
    ({"source": "martian"}, "source"),
    ({"source": ""}, "source"),
    ({"priority": 25}, "priority"),
    ({"priority": "20"}, "priority"),
    ({"priority": None}, "priority"),
    ({"confidence": 1.01}, "confidence"),
    ({"confidence": -0.1}, "confidence"),
    ({"confidence": math.nan}, "confidence"),
    ({"confidence": math.inf}, "confidence"),
    ({"confidence": "0.9"}, "confidence"),
    ({"confidence": True}, "confidence"),
    ({"params": ["to", "someone"]}, "params"),
    ({"params": "to=someone"}, "params"),
    ({"params": {"when": datetime(2030, 1, 1, tzinfo=UTC)}}, "params"),
    ({"params": {"recipients": {"a@example.com"}}}, "params"),
    ({"params": {"amount": math.nan}}, "params"),
    ({"params": {"body": "before\x00after"}}, "params"),
    ({"params": {"cc": ["a\x00@example.com"]}}, "params"),
    ({"idempotency_key": "k" * 129}, "idempotency_key"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_PROPOSALS, ids=[repr(bad)[:40] for bad, _ in BAD_PROPOSALS])
def test_it_refuses_a_bad_proposal_naming_the_field_and_stores_nothing(make_email, alice, bad, field):
    email = make_email()
    kwargs = {"type": "send_reply", "email": email, "acting_user": alice, **bad}

    with pytest.raises(InvalidProposal) as caught:
        propose_action(kwargs.pop("type"), **kwargs)

    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert isinstance(caught.value, ValueError)
    assert Action.objects.count() == 0
    assert AuditEntry.objects.count() == 0


def test_the_same_idempotency_key_twice_gives_the_same_action(make_email):
    email = make_email()

    first = propose_action("send_reply", email=email, params={"body": "Hi"}, idempotency_key="msg-1:reply")
    second = propose_action("send_reply", email=email, params={"body": "Hello"}, idempotency_key="msg-1:reply")

    assert second.pk == first.pk
    assert Action.objects.count() == 1
    assert Action.objects.get().params == {"body": "Hi"}
    assert AuditEntry.objects.filter(event="action.proposed").count() == 1


def test_the_idempotent_answer_is_the_action_as_it_is_now(make_email):
    first = propose_action("send_reply", params=REPLY, idempotency_key="msg-2:reply")
    transition_action(first, S.QUEUED, actor="policy")

    again = propose_action("send_reply", params=REPLY, idempotency_key="msg-2:reply")

    assert (again.pk, again.status) == (first.pk, S.QUEUED)


def test_proposals_without_a_key_are_all_stored(db):
    first = propose_action("send_reply", params=REPLY)
    second = propose_action("send_reply", params=REPLY)

    assert first.pk != second.pk
    assert first.idempotency_key != second.idempotency_key
    assert Action.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_proposals_with_one_key_store_one_action(transactional_db):
    for round_ in range(ROUNDS):
        key = f"redelivered-{round_}"

        def propose(ready, key: str = key) -> int:
            ready()
            return propose_action("send_reply", params=REPLY, source="ai", idempotency_key=key).pk

        outcomes = run_at_once(propose, propose)

        stored = Action.objects.get(idempotency_key=key)
        assert outcomes == [stored.pk, stored.pk]
        assert AuditEntry.objects.for_object(stored).count() == 1
