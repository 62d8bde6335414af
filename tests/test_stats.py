"""The figures of the dashboard, the stats API and the `stats` command (actions.stats), on known data."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from actions.models import Action, ActionStatus, Priority, ProcessingRun, RunStatus, RunStep
from actions.pipeline import pause_run
from actions.stats import human_rate, human_seconds, percentile, queue_depth, run_status, snapshot
from approvals.models import Approval, ApprovalStatus
from integrations.models import Circuit

_keys = count(1)


def add_action(type: str, status: str, now: datetime, *, took: float | None = None, ago: float = 60, **fields):
    """An action in `status`, which it reached `ago` seconds before `now` after `took` seconds of work."""
    action = Action.objects.create(type=type, status=status, idempotency_key=f"stats-{next(_keys)}", **fields)
    ended = now - timedelta(seconds=ago)
    started = ended - timedelta(seconds=took) if took is not None else None
    Action.objects.filter(pk=action.pk).update(status_changed_at=ended, started_at=started)
    return action


def add_run(email, status: str, now: datetime, took: float | None = None) -> ProcessingRun:
    started = now - timedelta(minutes=5)
    finished = started + timedelta(seconds=took) if took is not None else None
    return ProcessingRun.objects.create(email=email, status=status, started_at=started, finished_at=finished)


def add_approval(action: Action, status: str, now: datetime, waited_hours: float) -> Approval:
    approval = Approval.objects.create(action=action, status=status, expires_at=now + timedelta(days=2))
    Approval.objects.filter(pk=approval.pk).update(requested_at=now - timedelta(hours=waited_hours))
    return approval


def build_known_figures(make_email) -> datetime:
    """The data every figure below is checked against; returns the moment to take the snapshot at.

    Actions (11): send_reply succeeded x3 in the last hours (2, 4, 6 s of work) and one pending approval;
    create_task succeeded 3 days ago (8 s) and failed 1 hour ago (10 s); forward_email dead 2 days ago
    (20 s); archive_email queued x2 (normal lane); escalate_issue queued, urgent; follow_up proposed.
    Runs: succeeded in 1, 2, 3 and 10 s, failed in 5 s, one running and one cancelled (not timed).
    Approvals: three waiting for 1, 2 and 4 hours; one approved. Circuits: tasks open, chat half open.
    """
    now = timezone.now()
    hour, day = 3600, 86400
    for took in (2, 4, 6):
        add_action("send_reply", ActionStatus.SUCCEEDED, now, took=took, ago=hour)
    add_action("create_task", ActionStatus.SUCCEEDED, now, took=8, ago=3 * day)
    add_action("create_task", ActionStatus.FAILED, now, took=10, ago=hour)
    add_action("forward_email", ActionStatus.DEAD, now, took=20, ago=2 * day)
    add_action("archive_email", ActionStatus.QUEUED, now)
    add_action("archive_email", ActionStatus.QUEUED, now)
    add_action("escalate_issue", ActionStatus.QUEUED, now, priority=Priority.URGENT)
    add_action("follow_up", ActionStatus.PROPOSED, now)
    waiting = add_action("send_reply", ActionStatus.PENDING_APPROVAL, now)
    for hours in (1, 2, 4):
        add_approval(waiting, ApprovalStatus.PENDING, now, hours)
    add_approval(waiting, ApprovalStatus.APPROVED, now, 30)

    email = make_email()
    for took in (1, 2, 3, 10):
        add_run(email, RunStatus.SUCCEEDED, now, took)
    add_run(email, RunStatus.FAILED, now, 5)
    add_run(email, RunStatus.RUNNING, now)
    add_run(email, RunStatus.CANCELLED, now, 600)

    Circuit.objects.create(name="tasks", state="open")
    Circuit.objects.create(name="chat", state="half_open")
    return now


@pytest.fixture
def known(make_email) -> datetime:
    return build_known_figures(make_email)


def counts(rows: list[dict]) -> dict[str, int]:
    return {row["key"]: row["count"] for row in rows if row["count"]}


def test_it_counts_actions_by_status_and_by_type(known):
    actions = snapshot(known)["actions"]
    assert actions["total"] == 11
    assert counts(actions["by_status"]) == {
        "succeeded": 4,
        "failed": 1,
        "dead": 1,
        "queued": 3,
        "pending_approval": 1,
        "proposed": 1,
    }
    assert counts(actions["by_type"]) == {
        "send_reply": 4,
        "create_task": 2,
        "forward_email": 1,
        "archive_email": 2,
        "escalate_issue": 1,
        "follow_up": 1,
    }
    # Every status and type is there, zeros included, so a chart keeps its shape.
    assert len(actions["by_status"]) == len(ActionStatus.values)
    assert {"key": "undone", "label": "Undone", "count": 0} in actions["by_status"]


def test_it_gives_success_and_failure_rates_recently_and_over_all_time(known):
    outcomes = snapshot(known)["outcomes"]
    # The last 24 hours: three replies succeeded, one task failed; the dead forward is two days old.
    assert outcomes["last_24h"] == {"succeeded": 3, "failed": 1, "success_rate": 0.75, "failure_rate": 0.25}
    assert outcomes["all_time"]["succeeded"] == 4
    assert outcomes["all_time"]["failed"] == 2
    assert outcomes["all_time"]["success_rate"] == pytest.approx(4 / 6)


def test_its_rates_are_none_when_nothing_has_ended(db):
    assert snapshot()["outcomes"]["all_time"] == {
        "succeeded": 0,
        "failed": 0,
        "success_rate": None,
        "failure_rate": None,
    }


def test_it_gives_the_queue_depth_per_lane(known):
    assert snapshot(known)["queue_depth"] == queue_depth() == {"normal": 2, "urgent": 1}


def test_it_gives_the_median_and_95th_percentile_of_processing_times(known):
    times = snapshot(known)["processing_times"]
    # Runs that ended: 1, 2, 3, 5 and 10 s; the running and the cancelled one are not timed.
    assert times["runs"] == {"count": 5, "median": pytest.approx(3.0), "p95": pytest.approx(9.0)}
    # Actions that ended: 2, 4, 6, 8, 10 and 20 s of work. p95: rank 4.75, between 10 and 20.
    assert times["actions"] == {"count": 6, "median": pytest.approx(7.0), "p95": pytest.approx(17.5)}


def test_it_gives_the_approvals_waiting_and_their_age(known):
    approvals = snapshot(known)["approvals"]
    assert approvals["waiting"] == 3
    assert approvals["oldest_age"] == pytest.approx(4 * 3600)
    assert approvals["median_age"] == pytest.approx(2 * 3600)
    assert approvals["oldest_requested_at"] == known - timedelta(hours=4)


def test_the_median_age_of_an_even_number_of_approvals_is_between_the_middle_two(known):
    action = Approval.objects.first().action
    add_approval(action, ApprovalStatus.PENDING, known, 3)
    assert snapshot(known)["approvals"]["median_age"] == pytest.approx(2.5 * 3600)


def test_it_gives_every_integrations_circuit_closed_unless_it_tripped(known):
    circuits = {circuit["name"]: circuit["state"] for circuit in snapshot(known)["circuits"]}
    assert circuits == {
        "calendar": "closed",
        "chat": "half_open",
        "files": "closed",
        "mail": "closed",
        "mailbox": "closed",
        "reminders": "closed",
        "tasks": "open",
    }


def test_a_snapshot_costs_the_same_queries_however_much_there_is(known, make_email):
    with CaptureQueriesContext(connection) as few:
        snapshot(known)
    email = make_email()
    Action.objects.bulk_create(
        Action(type="send_reply", status=status, idempotency_key=f"more-{n}-{status}", started_at=known)
        for n in range(60)
        for status in (ActionStatus.SUCCEEDED, ActionStatus.QUEUED, ActionStatus.DEAD)
    )
    ProcessingRun.objects.bulk_create(
        ProcessingRun(email=email, status=RunStatus.SUCCEEDED, started_at=known, finished_at=known) for _ in range(60)
    )
    waiting = Action.objects.filter(status=ActionStatus.PENDING_APPROVAL).first()
    Approval.objects.bulk_create(Approval(action=waiting, expires_at=known) for _ in range(60))
    with CaptureQueriesContext(connection) as many:
        figures = snapshot(known)
    assert figures["actions"]["total"] == 11 + 180
    assert len(few) == len(many) == 8


def test_percentiles_interpolate_between_neighbours_as_postgresql_does():
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(n) for n in range(1, 21)], 0.95) == pytest.approx(19.05)


def test_durations_and_rates_read_for_people():
    assert [human_seconds(s) for s in (None, 0.25, 12.5, 252, 3 * 3600 + 360, 2 * 86400)] == [
        "-",
        "250 ms",
        "12.5 s",
        "4.2 min",
        "3.1 h",
        "2.0 d",
    ]
    assert (human_rate(None), human_rate(0.75), human_rate(2 / 3)) == ("-", "75.0%", "66.7%")


def test_a_runs_status_lists_its_steps_and_when_it_last_moved(make_email, django_assert_num_queries):
    now = timezone.now()
    run = add_run(make_email(), RunStatus.RUNNING, now)
    RunStep.objects.create(
        run=run, name="intake", status=RunStatus.SUCCEEDED, started_at=now, finished_at=now + timedelta(seconds=1)
    )
    RunStep.objects.create(run=run, name="analyse", status=RunStatus.RUNNING, started_at=now + timedelta(seconds=2))
    run = ProcessingRun.objects.prefetch_related("steps").get(pk=run.pk)
    ContentType.objects.get_for_model(run)  # cached for the process, as in any server
    with django_assert_num_queries(1):  # its last audit entry; the steps are prefetched
        status = run_status(run)
    assert (status["status"], status["finished"]) == ("running", False)
    assert [(step["name"], step["status"]) for step in status["steps"]] == [
        ("intake", "succeeded"),
        ("analyse", "running"),
    ]
    assert status["updated_at"] == now + timedelta(seconds=2)


def test_a_runs_status_moves_when_someone_pauses_it(make_email, alice):
    run = add_run(make_email(), RunStatus.RUNNING, timezone.now() - timedelta(hours=1))
    before = run_status(run)["updated_at"]
    pause_run(run, acting_user=alice, reason="checking the analysis")
    run.refresh_from_db()
    status = run_status(run)
    assert (status["status"], status["reason"]) == ("paused", "checking the analysis")
    assert status["updated_at"] > before
