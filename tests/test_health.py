"""/healthz for load balancers, and /health/ with the database, the workers' heartbeat and the queue.

Worker heartbeats are written the way a django-q2 cluster writes them
(`Stat(sentinel).save()`), and once by a real `qcluster` subprocess, which
also shows the web process can see another process's heartbeat.
"""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace

import pytest
from django.db import OperationalError, connection
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.status import Stat

from actions.models import Action, ActionStatus, Priority
from observability.workers import clusters_seen
from tests.processes import Worker, wait_for


def beat(cluster_id: uuid.UUID, *, status: str = Conf.IDLE, workers: int = 2) -> None:
    """Save one heartbeat as a cluster's guard loop does, for a cluster with `workers` worker processes."""
    empty = SimpleNamespace(qsize=lambda: 0)
    sentinel = SimpleNamespace(
        parent_pid=None,
        pid=os.getpid(),
        cluster_id=cluster_id,
        broker=get_broker(),
        tob=timezone.now(),
        reincarnations=0,
        status=lambda: status,
        result_queue=empty,
        task_queue=empty,
        monitor=None,
        pusher=None,
        pool=[SimpleNamespace(pid=n) for n in range(workers)],
    )
    Stat(sentinel).save()


@pytest.fixture
def no_worker():
    """No cluster's heartbeat current: one killed by another suite just before shows for up to 3 seconds."""
    assert wait_for(lambda: not clusters_seen(), timeout=5)


@pytest.fixture
def heartbeat():
    """A cluster alive for the test; stopped at the end, as a cluster's last heartbeat says."""
    cluster_id = uuid.uuid4()
    beat(cluster_id)
    yield cluster_id
    beat(cluster_id, status=Conf.STOPPED)


def test_healthz_answers_ok_without_touching_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(reverse("healthz"))
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    assert response["Cache-Control"].startswith("max-age=0")


def test_healthz_is_not_redirected_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get(reverse("healthz")).status_code == 200
    assert client.get(reverse("health")).status_code == 301


def test_without_a_worker_the_health_page_says_so_and_still_answers_200(client, bob, no_worker):
    client.force_login(bob)
    response = client.get(reverse("health"))
    workers = response.json()["checks"]["workers"]
    assert response.status_code == 200
    assert workers["ok"] is False
    assert workers["detail"].startswith("No worker seen")
    assert workers["required"] is False


def test_without_a_worker_the_health_page_fails_when_workers_are_required(client, db, settings, no_worker):
    settings.HEALTH_REQUIRE_WORKERS = True
    response = client.get(reverse("health"))
    assert (response.status_code, response.json()["status"]) == (503, "failing")
    assert response.json()["checks"]["workers"] == {"ok": False}


def test_a_worker_heartbeat_makes_the_workers_check_pass(client, bob, heartbeat, settings):
    settings.HEALTH_REQUIRE_WORKERS = True
    client.force_login(bob)
    response = client.get(reverse("health"))
    workers = response.json()["checks"]["workers"]
    assert response.status_code == 200
    assert workers["ok"] is True
    assert [(c["id"], c["workers"], c["status"]) for c in workers["clusters"]] == [(str(heartbeat), 2, "Idle")]


def test_a_stopped_cluster_is_not_a_worker(db, heartbeat):
    beat(heartbeat, status=Conf.STOPPED)
    assert clusters_seen() == []


def test_strangers_see_whether_workers_run_but_not_where(client, db, heartbeat):
    body = client.get(reverse("health")).json()
    assert body["checks"]["workers"] == {"ok": True}
    assert "queue_depth" not in body
    assert str(heartbeat) not in str(body)


def test_staff_see_the_queue_depth_per_lane(client, bob, make_action):
    queued = [make_action("create_task", priority=p) for p in (Priority.NORMAL, Priority.NORMAL, Priority.URGENT)]
    Action.objects.filter(pk__in=[action.pk for action in queued]).update(status=ActionStatus.QUEUED)
    make_action("create_task")  # proposed, not queued
    client.force_login(bob)
    assert client.get(reverse("health")).json()["queue_depth"] == {"normal": 2, "urgent": 1}


def test_a_database_that_does_not_answer_makes_health_fail_with_503(client, db, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", refuse)
        response = client.get(reverse("health"))
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {"ok": False}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_running_qcluster_is_seen_by_the_health_page(client, bob, tmp_path):
    worker = Worker(tmp_path / "worker.log", workers=1)
    try:
        # A starting cluster reports its heartbeat before its workers are up.
        assert wait_for(lambda: [c.workers for c in clusters_seen()] == [1], timeout=60), worker.output()
        client.force_login(bob)
        workers = client.get(reverse("health")).json()["checks"]["workers"]
        assert workers["ok"] is True
        assert [cluster["workers"] for cluster in workers["clusters"]] == [1]
    finally:
        worker.stop()
    assert wait_for(lambda: not clusters_seen(), timeout=10)
