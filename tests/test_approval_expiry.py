"""Expiring approvals nobody decided in time: expire_overdue_approvals and `manage.py expire_approvals`."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from actions.models import Action, ActionStatus, AuditEntry
from actions.proposals import propose_action
from actions.transitions import transition_action
from approvals.expiry import expire_overdue_approvals
from approvals.models import Approval, ApprovalPolicy, ApprovalStatus
from tests.concurrency import run_at_once
from tests.conftest import REPLY

S = ActionStatus


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def waiting_action(make_action):
    """An action in pending_approval, put there the way the policy does it."""

    def make() -> Action:
        action = make_action()
        return transition_action(action, S.PENDING_APPROVAL, actor="policy", reason="needs a person")

    return make


def _approval(action: Action, expires_at, **fields) -> Approval:
    return Approval.objects.create(action=action, expires_at=expires_at, **fields)


def _events(obj) -> list[str]:
    return sorted(AuditEntry.objects.for_object(obj).values_list("event", flat=True))


def _status(obj):
    return type(obj).objects.values_list("status", flat=True).get(pk=obj.pk)


def test_it_expires_an_overdue_approval_and_its_action(waiting_action, now):
    action = waiting_action()
    policy = ApprovalPolicy.objects.create(name="Replies to customers", action_type="send_reply")
    approval = _approval(action, now - timedelta(minutes=1), policy=policy)

    assert expire_overdue_approvals(now=now) == 1

    approval.refresh_from_db()
    assert (approval.status, approval.decided_at, approval.decided_by) == (ApprovalStatus.EXPIRED, now, None)
    assert _status(action) == S.EXPIRED

    [approval_entry] = AuditEntry.objects.for_object(approval)
    assert (approval_entry.event, approval_entry.actor, approval_entry.actor_label) == (
        "approval.expired",
        None,
        "scheduler",
    )
    assert approval_entry.details == {
        "expires_at": approval.expires_at.isoformat(),
        "policy": "Replies to customers",
        "reason": "nobody above to escalate to",
    }

    [action_entry] = AuditEntry.objects.for_object(action).filter(event="action.expired")
    assert action_entry.actor_label == "scheduler"
    assert action_entry.details == {
        "from": "pending_approval",
        "to": "expired",
        "reason": "approval timed out; nobody above to escalate to",
    }


def test_it_expires_an_approval_whose_deadline_is_exactly_now(waiting_action, now):
    action = waiting_action()
    approval = _approval(action, now)

    assert expire_overdue_approvals(now=now) == 1

    assert _status(approval) == ApprovalStatus.EXPIRED
    assert _status(action) == S.EXPIRED


@pytest.mark.parametrize("left", [timedelta(microseconds=1), timedelta(seconds=1), timedelta(days=2)])
def test_it_leaves_an_approval_that_is_not_yet_due(waiting_action, now, left):
    action = waiting_action()
    approval = _approval(action, now + left)

    assert expire_overdue_approvals(now=now) == 0

    approval.refresh_from_db()
    assert (approval.status, approval.decided_at) == (ApprovalStatus.PENDING, None)
    assert _status(action) == S.PENDING_APPROVAL
    assert _events(approval) == []
    assert "action.expired" not in _events(action)


def test_it_expires_only_the_overdue_ones_among_many(waiting_action, now):
    overdue = [_approval(waiting_action(), now - timedelta(hours=h)) for h in (1, 5, 48)]
    due_later = [_approval(waiting_action(), now + timedelta(hours=h)) for h in (1, 5)]

    assert expire_overdue_approvals(now=now) == 3

    assert [_status(a) for a in overdue] == [ApprovalStatus.EXPIRED] * 3
    assert [_status(a.action) for a in overdue] == [S.EXPIRED] * 3
    assert [_status(a) for a in due_later] == [ApprovalStatus.PENDING] * 2
    assert [_status(a.action) for a in due_later] == [S.PENDING_APPROVAL] * 2


def test_an_action_still_waiting_for_another_approval_stays_pending(waiting_action, now):
    action = waiting_action()
    first = _approval(action, now - timedelta(minutes=1))
    second = _approval(action, now + timedelta(hours=1), level=2)

    assert expire_overdue_approvals(now=now) == 1

    assert _status(first) == ApprovalStatus.EXPIRED
    assert _status(second) == ApprovalStatus.PENDING
    assert _status(action) == S.PENDING_APPROVAL
    assert "action.expired" not in _events(action)

    # When the second one runs out too, the action expires.
    assert expire_overdue_approvals(now=now + timedelta(hours=2)) == 1
    assert _status(second) == ApprovalStatus.EXPIRED
    assert _status(action) == S.EXPIRED


def test_an_action_whose_approvals_all_run_out_at_once_expires_once(waiting_action, now):
    action = waiting_action()
    approvals = [_approval(action, now - timedelta(minutes=m)) for m in (1, 2)]

    assert expire_overdue_approvals(now=now) == 2

    assert [_status(a) for a in approvals] == [ApprovalStatus.EXPIRED] * 2
    assert _status(action) == S.EXPIRED
    assert AuditEntry.objects.for_object(action).filter(event="action.expired").count() == 1


@pytest.mark.parametrize(
    "decided", [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.ESCALATED, ApprovalStatus.EXPIRED]
)
def test_it_leaves_an_approval_that_was_already_decided(waiting_action, now, alice, decided):
    action = waiting_action()
    decided_at = now - timedelta(hours=3)
    approval = _approval(
        action, now - timedelta(hours=1), status=decided, decided_at=decided_at, decided_by=alice, comment="Fine."
    )

    assert expire_overdue_approvals(now=now) == 0

    approval.refresh_from_db()
    assert (approval.status, approval.decided_at, approval.decided_by, approval.comment) == (
        decided,
        decided_at,
        alice,
        "Fine.",
    )
    assert _status(action) == S.PENDING_APPROVAL
    assert _events(approval) == []


@pytest.mark.parametrize("outcome", [S.APPROVED, S.REJECTED, S.CANCELLED])
def test_an_action_decided_otherwise_keeps_its_outcome(waiting_action, now, outcome):
    action = waiting_action()
    transition_action(action, outcome, actor="test")
    approval = _approval(action, now - timedelta(minutes=1))

    assert expire_overdue_approvals(now=now) == 1

    # The request itself is closed; what happened to the action stands.
    assert _status(approval) == ApprovalStatus.EXPIRED
    assert _status(action) == outcome
    assert "action.expired" not in _events(action)


def test_an_action_decided_while_expiry_runs_keeps_its_outcome(waiting_action, now, monkeypatch):
    action = waiting_action()
    approval = _approval(action, now - timedelta(minutes=1))
    real_transition = transition_action

    def approved_just_before(stale, to, **kwargs):
        # A person approves between the scheduler's read and its compare-and-set.
        transition_action(Action.objects.get(pk=stale.pk), S.APPROVED, actor="bob")
        return real_transition(stale, to, **kwargs)

    monkeypatch.setattr("approvals.decisions.transition_action", approved_just_before)

    assert expire_overdue_approvals(now=now) == 1

    assert _status(approval) == ApprovalStatus.EXPIRED
    assert _status(action) == S.APPROVED
    assert "action.expired" not in _events(action)
    assert "approval.expired" in _events(approval)


def test_running_it_again_expires_nothing_more(waiting_action, now):
    action = waiting_action()
    _approval(action, now - timedelta(minutes=1))
    _approval(waiting_action(), now - timedelta(minutes=2))
    assert expire_overdue_approvals(now=now) == 2
    entries = AuditEntry.objects.count()
    decided = sorted(Approval.objects.values_list("pk", "decided_at"))

    assert expire_overdue_approvals(now=now) == 0
    assert expire_overdue_approvals(now=now + timedelta(days=1)) == 0

    assert AuditEntry.objects.count() == entries
    assert sorted(Approval.objects.values_list("pk", "decided_at")) == decided


def test_without_a_time_it_uses_the_current_time(waiting_action):
    past = _approval(waiting_action(), timezone.now() - timedelta(seconds=1))
    future = _approval(waiting_action(), timezone.now() + timedelta(minutes=5))
    before = timezone.now()

    assert expire_overdue_approvals() == 1

    past.refresh_from_db()
    assert past.status == ApprovalStatus.EXPIRED
    assert before <= past.decided_at <= timezone.now()
    assert _status(future) == ApprovalStatus.PENDING


def test_it_expires_more_approvals_than_one_batch_holds(waiting_action, now):
    # More rows than the 200 the loop reads at a time, all updated while it reads.
    actions = [waiting_action() for _ in range(5)]
    Approval.objects.bulk_create(
        Approval(action=actions[i % 5], expires_at=now - timedelta(seconds=i + 1)) for i in range(450)
    )

    assert expire_overdue_approvals(now=now) == 450

    assert not Approval.objects.filter(status=ApprovalStatus.PENDING).exists()
    assert AuditEntry.objects.filter(event="approval.expired").count() == 450
    assert [_status(action) for action in actions] == [S.EXPIRED] * 5


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_at_once_expire_each_approval_once(transactional_db):
    now = timezone.now()
    actions = []
    for _ in range(20):
        action = propose_action("send_reply", params=REPLY, source="ai")
        actions.append(transition_action(action, S.PENDING_APPROVAL, actor="policy"))
        _approval(action, now - timedelta(minutes=1))

    def expire(ready) -> int:
        ready()
        return expire_overdue_approvals(now=now)

    counts = run_at_once(expire, expire, timeout=120)

    assert all(isinstance(count, int) for count in counts), counts
    assert sum(counts) == 20
    assert AuditEntry.objects.filter(event="approval.expired").count() == 20
    assert AuditEntry.objects.filter(event="action.expired").count() == 20
    assert [_status(action) for action in actions] == [S.EXPIRED] * 20


# --- The command -------------------------------------------------------------


def _command() -> str:
    out = StringIO()
    call_command("expire_approvals", stdout=out)
    return out.getvalue()


def test_the_command_expires_and_prints_the_count(waiting_action):
    actions = [waiting_action() for _ in range(3)]
    for action in actions[:2]:
        _approval(action, timezone.now() - timedelta(minutes=1))
    _approval(actions[2], timezone.now() + timedelta(hours=1))

    assert _command() == "Expired 2 approvals.\n"

    assert [_status(action) for action in actions] == [S.EXPIRED, S.EXPIRED, S.PENDING_APPROVAL]
    assert _command() == "Expired 0 approvals.\n"


def test_the_command_counts_one_approval_in_the_singular(waiting_action):
    _approval(waiting_action(), timezone.now() - timedelta(minutes=1))

    assert _command() == "Expired 1 approval.\n"
