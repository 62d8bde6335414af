"""The django-q2 set-up: schedules, and a real worker process on the configured broker."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule, Success
from django_q.tasks import async_task

from actions.models import ActionStatus
from actions.transitions import transition_action
from approvals.models import Approval, ApprovalStatus
from config.schedules import SCHEDULES, register_schedules
from tests.processes import Worker, wait_for
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
def worker(transactional_db, broker, tmp_path):
    """A real `manage.py qcluster` on the test database and the configured broker."""
    process = Worker(tmp_path / "worker.log")
    yield process
    process.stop()


@pytest.mark.slow
def test_a_worker_runs_a_queued_job_on_the_configured_broker(worker, make_action, alice):
    # Only the job we enqueue may do the work, not the scheduler.
    Schedule.objects.all().delete()
    action = make_action()
    transition_action(action, ActionStatus.PENDING_APPROVAL, acting_user=alice)
    approval = Approval.objects.create(action=action, expires_at=timezone.now() - timedelta(minutes=1))

    async_task("approvals.expiry.expire_overdue_approvals", task_name="worker-smoke-test")

    finished = wait_for(lambda: Success.objects.filter(name="worker-smoke-test").exists(), timeout=60)
    assert finished, f"The worker did not finish the job within 60 s. Its output:\n{worker.output()}"
    approval.refresh_from_db()
    action.refresh_from_db()
    assert approval.status == ApprovalStatus.EXPIRED
    assert action.status == ActionStatus.EXPIRED
    assert Success.objects.get(name="worker-smoke-test").result == 1
