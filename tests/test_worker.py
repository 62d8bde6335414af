"""The django-q2 set-up: schedules, and a real worker process on the configured broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Success
from django_q.tasks import async_task

from actions.models import ActionStatus
from actions.transitions import transition_action
from approvals.models import Approval, ApprovalStatus
from config.schedules import SCHEDULES, register_schedules
from tests.services import require_service


def test_migrate_registers_every_schedule(db):
    assert set(Schedule.objects.values_list("name", flat=True)) == set(SCHEDULES)


def test_registering_schedules_again_changes_nothing(db):
    before = list(Schedule.objects.order_by("name").values("id", "name", "func", "minutes"))
    register_schedules()
    register_schedules()
    assert list(Schedule.objects.order_by("name").values("id", "name", "func", "minutes")) == before


def test_registering_repairs_an_edited_schedule(db):
    Schedule.objects.filter(name="expire_approvals").update(func="somewhere.else", minutes=999)
    register_schedules()
    schedule = Schedule.objects.get(name="expire_approvals")
    assert (schedule.func, schedule.minutes) == ("approvals.expiry.expire_overdue_approvals", 5)


def _test_database_url() -> str:
    """The URL of the database this test run uses, for the worker subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or ""
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def broker():
    if settings.REDIS_URL:
        url = urlparse(settings.REDIS_URL)
        require_service("Redis", url.hostname or "127.0.0.1", url.port or 6379)
    queue = get_broker()
    queue.purge_queue()
    yield queue
    queue.purge_queue()


@pytest.fixture
def worker(transactional_db, broker):
    """A real `manage.py qcluster` on the test database and the configured broker."""
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "Q_WORKERS": "1"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    # Signal the main process only: a SIGTERM to the whole group can hang django-q2.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


@pytest.mark.slow
def test_a_worker_runs_a_queued_job_on_the_configured_broker(worker, make_action, alice):
    # Only the job we enqueue may do the work, not the scheduler.
    Schedule.objects.all().delete()
    action = make_action()
    transition_action(action, ActionStatus.PENDING_APPROVAL, acting_user=alice)
    approval = Approval.objects.create(action=action, expires_at=timezone.now() - timedelta(minutes=1))

    async_task("approvals.expiry.expire_overdue_approvals", task_name="worker-smoke-test")

    finished = _wait_for(lambda: Success.objects.filter(name="worker-smoke-test").exists())
    if not finished:
        worker.send_signal(signal.SIGTERM)
        output = worker.communicate(timeout=30)[0]
        pytest.fail(f"The worker did not finish the job within 60 s. Its output:\n{output}")
    approval.refresh_from_db()
    action.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert action.status == ActionStatus.EXPIRED
    assert Success.objects.get(name="worker-smoke-test").result == 1
