"""Real `manage.py qcluster` workers for tests: clean queues, starting workers, queueing a batch, waiting for its end.

Workers run on the test database and the configured broker (ORM, or Redis
with REDIS_URL), with outgoing mail to an SMTP server on loopback. The test
process plays the sweeper, calling sweep() where the scheduler would every
minute, so tests need not wait. A test module's fixtures delegate here:

    @pytest.fixture(autouse=True)
    def _queues(settings):
        yield from clean_queues(settings)
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

from django.db import transaction
from django_q.brokers import get_broker

from actions.executor import queue_action
from actions.models import Action, ActionStatus, Email, Priority
from actions.proposals import propose_action
from actions.sweeper import sweep
from tests.conftest import SAMPLE_PARAMS
from tests.processes import Worker, wait_for
from tests.services import require_service
from tests.smtp import LoopbackSMTP

S = ActionStatus
FINAL = {S.SUCCEEDED, S.DEAD, S.CANCELLED, S.UNDONE}

# What every worker in these tests runs with: no send delay, fast retries,
# mail allowed anywhere (the guard rails have tests of their own).
WORKER_ENV = {
    "SEND_DELAY_SECONDS": "0",
    "RETRY_BASE_SECONDS": "1",
    "RETRY_MAX_SECONDS": "2",
    "RETRY_LIMIT": "10",
    "ALLOWED_RECIPIENT_DOMAINS": "*",
    "ACTION_LEASE_SECONDS": "5",
    "CIRCUIT_COOLDOWN_SECONDS": "2",
}


def clean_queues(settings) -> Iterator[None]:
    """Both lanes empty before and after the test; the test process sweeps with the workers' timings."""
    if settings.REDIS_URL:
        url = urlparse(settings.REDIS_URL)
        require_service("Redis", url.hostname or "127.0.0.1", url.port or 6379)
    settings.SEND_DELAY_SECONDS = 0
    settings.ACTION_LEASE_SECONDS = 5
    settings.REQUEUE_AFTER_SECONDS = 2
    settings.ALLOWED_RECIPIENT_DOMAINS = ["*"]
    lanes = [get_broker(), get_broker(settings.URGENT_LANE)]
    for lane in lanes:
        lane.purge_queue()
    yield
    for lane in lanes:
        lane.purge_queue()


def worker_starter(log_dir: Path, smtp: LoopbackSMTP) -> Iterator[Callable[..., Worker]]:
    """A function that starts a worker (WORKER_ENV, mail to `smtp`, then `env`); each is stopped afterwards."""
    started: list[Worker] = []

    def start(*, lane: str | None = None, workers: int = 1, database_url: str = "", **env: str) -> Worker:
        mail = {"EMAIL_HOST": smtp.host, "EMAIL_PORT": str(smtp.port)}
        log = log_dir / f"worker-{len(started)}.log"
        worker = Worker(log, lane=lane, workers=workers, database_url=database_url, **{**WORKER_ENV, **mail, **env})
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def new_email(n: int) -> Email:
    return Email.objects.create(
        mailbox="support@acme.example",
        message_id=f"<worker-test-{uuid.uuid4().hex}@customer.example>",
        from_address=f"customer{n}@customer.example",
        subject=f"Question {n}",
        text_body="Could you help?",
    )


def propose_and_queue(types: list[str], *, priority: int = Priority.NORMAL) -> list[Action]:
    """One action of each type (on an email of its own, with the sample parameters), queued on commit."""
    actions = []
    with transaction.atomic():
        for n, action_type in enumerate(types):
            action = propose_action(
                action_type,
                email=new_email(Email.objects.count() + n),
                params=SAMPLE_PARAMS[action_type],
                priority=priority,
            )
            actions.append(queue_action(action, actor="test"))
    return actions


def statuses(actions: list[Action]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in Action.objects.filter(pk__in=[a.pk for a in actions]).values_list("status", flat=True):
        counts[value] = counts.get(value, 0) + 1
    return counts


def all_final(actions: list[Action]) -> bool:
    return not Action.objects.filter(pk__in=[a.pk for a in actions]).exclude(status__in=FINAL).exists()


def finish(actions: list[Action], worker: Worker, timeout: float = 120) -> None:
    """Sweep until every action is final; fail with the statuses and the worker's log if they are not in time."""
    done = wait_for(lambda: all_final(actions), timeout=timeout, every=0.5, then=sweep)
    assert done, f"Not finished: {statuses(actions)}\n{worker.output()[-3000:]}"
