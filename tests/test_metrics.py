"""/metrics: Prometheus text that parses, whose numbers match the rows, in constant queries, for scrapers only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from actions.models import Action, ActionStatus, ProcessingRun, RunStatus
from approvals.models import Approval, ApprovalStatus
from integrations import circuit
from observability.workers import clusters_seen
from tests.processes import wait_for

S = ActionStatus
NOW = timezone.now()


def action(type: str, status: str, took: float | None = None) -> Action:
    """An action in `status`; `took` seconds between its claim and its last move."""
    made = Action.objects.create(type=type, idempotency_key=uuid.uuid4().hex)
    started = NOW - timedelta(seconds=took) if took is not None else None
    Action.objects.filter(pk=made.pk).update(status=status, started_at=started, status_changed_at=NOW)
    return made


def run(email, status: str, took: float | None = None) -> None:
    started = NOW - timedelta(seconds=took) if took is not None else None
    ProcessingRun.objects.create(email=email, status=status, started_at=started, finished_at=started and NOW)


def approval(of: Action, status: str, waited: float | None = None) -> None:
    made = Approval.objects.create(action=of, status=status, expires_at=NOW + timedelta(days=2))
    if waited is not None:
        Approval.objects.filter(pk=made.pk).update(requested_at=NOW - timedelta(seconds=waited), decided_at=NOW)


@pytest.fixture
def work(db, make_email):
    """Four actions, three runs, three approvals and some integration calls, with known timings."""
    task = action("create_task", S.SUCCEEDED, took=0.3)
    action("create_task", S.SUCCEEDED, took=20)
    action("send_reply", S.DEAD, took=2)
    waiting = action("send_reply", S.PENDING_APPROVAL)
    email = make_email()
    run(email, RunStatus.SUCCEEDED, took=3)
    run(email, RunStatus.FAILED, took=45)
    run(email, RunStatus.RUNNING)
    approval(task, ApprovalStatus.APPROVED, waited=90)
    approval(task, ApprovalStatus.REJECTED, waited=3 * 3600)
    approval(waiting, ApprovalStatus.PENDING)
    circuit.record_success("tasks")
    circuit.record_success("tasks")
    circuit.record_failure("tasks", "503 from Jira")
    circuit.record_refusal("tasks")  # a 401: counted, but no sign Jira is down
    circuit.record_success("local")  # nothing outside: not an integration call


def scrape(client, **headers) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics, by name and labels, parsed the way Prometheus reads the text."""
    response = client.get(reverse("metrics"), **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_actions_are_counted_by_type_and_status(client, work):
    samples = scrape(client)
    assert samples[("mailroom_actions", frozenset({("type", "create_task"), ("status", "succeeded")}))] == 2
    assert samples[("mailroom_actions", frozenset({("type", "send_reply"), ("status", "pending_approval")}))] == 1
    assert samples[("mailroom_actions_created_total", frozenset({("type", "send_reply")}))] == 2


def test_action_durations_fall_into_their_buckets(client, work):
    samples = scrape(client)
    done = {("type", "create_task"), ("status", "succeeded")}

    def bucket(le: str) -> float:
        return samples[("mailroom_action_duration_seconds_bucket", frozenset({*done, ("le", le)}))]

    assert (bucket("0.1"), bucket("0.5"), bucket("10.0"), bucket("30.0"), bucket("+Inf")) == (0, 1, 1, 2, 2)
    assert samples[("mailroom_action_duration_seconds_count", frozenset(done))] == 2
    assert samples[("mailroom_action_duration_seconds_sum", frozenset(done))] == pytest.approx(20.3)
    dead = frozenset({("type", "send_reply"), ("status", "dead"), ("le", "2.5")})
    assert samples[("mailroom_action_duration_seconds_bucket", dead)] == 1
    # An action that never ran has no duration.
    assert not any(
        name.startswith("mailroom_action_duration") and ("status", "pending_approval") in labels
        for name, labels in samples
    )


def test_runs_are_counted_and_timed_by_status(client, work):
    samples = scrape(client)
    assert samples[("mailroom_runs", frozenset({("status", "running")}))] == 1
    assert samples[("mailroom_runs_created_total", frozenset())] == 3
    failed = {("status", "failed")}
    assert samples[("mailroom_run_duration_seconds_bucket", frozenset({*failed, ("le", "30.0")}))] == 0
    assert samples[("mailroom_run_duration_seconds_bucket", frozenset({*failed, ("le", "60.0")}))] == 1
    assert samples[("mailroom_run_duration_seconds_sum", frozenset(failed))] == pytest.approx(45)


def test_approvals_are_counted_with_their_decision_latency(client, work):
    samples = scrape(client)
    assert samples[("mailroom_approvals", frozenset({("status", "pending")}))] == 1
    assert samples[("mailroom_approvals_created_total", frozenset())] == 3
    approved = {("status", "approved")}
    assert samples[("mailroom_approval_decision_seconds_bucket", frozenset({*approved, ("le", "60.0")}))] == 0
    assert samples[("mailroom_approval_decision_seconds_bucket", frozenset({*approved, ("le", "300.0")}))] == 1
    rejected = frozenset({("status", "rejected"), ("le", "14400.0")})
    assert samples[("mailroom_approval_decision_seconds_bucket", rejected)] == 1


def test_integration_calls_are_counted_by_capability_and_outcome(client, work):
    samples = scrape(client)
    calls = {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "mailroom_integration_calls_total" and ("capability", "tasks") in labels
    }
    assert calls == {"success": 2, "failure": 1, "refused": 1}
    assert not any(("capability", "local") in labels for _, labels in samples)


def test_the_queue_and_the_workers_are_gauges(client, work):
    assert wait_for(lambda: not clusters_seen(), timeout=5)
    samples = scrape(client)
    assert samples[("mailroom_queue_depth", frozenset({("lane", "normal")}))] == 0
    assert samples[("mailroom_worker_clusters", frozenset())] == 0


def test_a_scrape_costs_the_same_queries_however_many_rows(client, work, make_email, django_assert_num_queries):
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for n in range(30):
        owner = action(("create_task", "send_reply", "forward_email")[n % 3], S.SUCCEEDED, took=n)
        approval(owner, ApprovalStatus.APPROVED, waited=n * 60)
        run(make_email(), RunStatus.SUCCEEDED, took=n)
        circuit.record_success(f"capability-{n}")
    with django_assert_num_queries(len(few)):
        scrape(client)
    assert len(few) == 6  # actions, runs, approvals, integration calls, circuits, queue depth


# --- Who may scrape ---------------------------------------------------------------------

PUBLIC = {"REMOTE_ADDR": "203.0.113.9"}


def test_without_a_token_this_machine_and_the_private_network_may_scrape(client, db):
    assert client.get(reverse("metrics")).status_code == 200  # the test client is 127.0.0.1
    assert client.get(reverse("metrics"), REMOTE_ADDR="10.1.2.3").status_code == 200


def test_without_a_token_strangers_and_proxied_requests_are_refused(client, db):
    assert client.get(reverse("metrics"), **PUBLIC).status_code == 403
    # Behind a proxy every request comes from the proxy's own (private) address.
    assert client.get(reverse("metrics"), HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_staff_may_always_scrape_and_other_users_may_not(client, bob, charlie):
    client.force_login(charlie)
    assert client.get(reverse("metrics"), **PUBLIC).status_code == 403
    client.force_login(bob)
    assert client.get(reverse("metrics"), **PUBLIC).status_code == 200


def test_with_a_token_only_its_bearer_may_scrape_even_from_this_machine(client, db, settings):
    settings.METRICS_TOKEN = "scrape-me-7c1f"
    refused = client.get(reverse("metrics"))
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(reverse("metrics"), HTTP_AUTHORIZATION="Bearer scrape-me-7c1f", **PUBLIC).status_code == 200


def test_metrics_refuse_writes(client, db):
    assert client.post(reverse("metrics")).status_code == 405
