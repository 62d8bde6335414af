"""Reliability: the database fails under workers running a batch, again and again, and nothing is lost or done twice.

On PostgreSQL the test process ends every other connection to the test
database (pg_terminate_backend) a dozen times mid-batch, as a failover or a
server restart does; the workers meet "terminating connection due to
administrator command" wherever they were. On SQLite there is no server
connection to end; the nearest honest failure is a database that refuses
writes: the test process holds the write lock longer than the workers' busy
timeout (1 s here, through their DATABASE_URL), so their writes fail with
"database is locked" at whatever step they had reached.

Either way the workers stay up, the sweeper takes back what was cut short,
and every action must end succeeded with its effect made once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from django.db import connection, transaction

from actions.models import Action, ActionStatus, AuditEntry, Email
from actions.sweeper import sweep
from integrations.models import LocalReminder, LocalTask, OutboxMessage, OutboxStatus
from tests import processes
from tests.processes import wait_for
from tests.workers import all_final, clean_queues, finish, propose_and_queue, statuses, worker_starter

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]
S = ActionStatus

# Mail to the loopback SMTP server (replies, and meeting invitations by email), and local effects.
BATCH = {"send_reply": 50, "schedule_meeting": 10, "create_task": 40, "set_reminder": 30, "archive_email": 30}
MAIL_TYPES = ("send_reply", "schedule_meeting")
SQLITE_BUSY_TIMEOUT = 1  # seconds a worker waits for the write lock before its write fails (whole seconds)
SQLITE_LOCKED_FOR = 1.5  # seconds the test holds the write lock: writes begun in its first 0.5 s fail
PROGRESS = 8  # actions that succeed between one failure and the next, so that each meets a busy batch
# A task the database failure cut short, in a worker's log.
CUT_SHORT = re.compile(r"Failed 'actions\.executor\.run_action' \(action-\d+\)")


@pytest.fixture(autouse=True)
def _queues(settings):
    yield from clean_queues(settings)


@pytest.fixture
def start_worker(tmp_path, smtp_server):
    yield from worker_starter(tmp_path, smtp_server)


def end_connections() -> int:
    """End every connection to the test database but the test's own; how many there were."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def lock_out_writers() -> int:
    """Hold SQLite's write lock (IMMEDIATE transactions take it at BEGIN) past the workers' busy timeout."""
    with transaction.atomic():
        time.sleep(SQLITE_LOCKED_FOR)
    return 1


def fail_repeatedly(fail: Callable[[], int], actions: list[Action], *, times: int) -> list[int]:
    """Make the database fail `times` times, each once the batch has moved on since the last; what each hit."""
    succeeded = Action.objects.filter(pk__in=[a.pk for a in actions], status=S.SUCCEEDED).count

    def moved_on(target: int) -> Callable[[], bool]:
        return lambda: succeeded() >= target or all_final(actions)

    hits: list[int] = []
    while len(hits) < times and not all_final(actions):
        wait_for(moved_on(succeeded() + PROGRESS), timeout=60, every=0.05, then=sweep)
        if not all_final(actions):
            hits.append(fail())
    return hits


def test_the_database_failing_mid_batch_loses_nothing_and_does_nothing_twice(start_worker, smtp_server, capsys):
    vendor = connection.vendor
    actions = propose_and_queue([kind for kind, count in BATCH.items() for _ in range(count)])
    if vendor == "postgresql":
        worker = start_worker(workers=2)
        fail, times = end_connections, 10
    else:
        worker = start_worker(workers=2, database_url=f"{processes.test_database_url()}?timeout={SQLITE_BUSY_TIMEOUT}")
        # A lock-out that meets the ORM broker's pusher also rests it 10 s (django-q2), so fewer of them.
        fail, times = lock_out_writers, 3
    began = time.monotonic()
    assert wait_for(lambda: len(smtp_server.received) >= 5, timeout=60, every=0.05), worker.output()[-3000:]

    hits = fail_repeatedly(fail, actions, times=times)
    at_last_failure = statuses(actions)
    finish(actions, worker)
    took = time.monotonic() - began

    cut_short = len(CUT_SHORT.findall(worker.output()))
    retried = Action.objects.filter(pk__in=[a.pk for a in actions], attempts__gt=1).count()
    taken_back = AuditEntry.objects.filter(event="action.queued", details__reason="worker lease expired").count()
    sent = smtp_server.message_id_counts()
    with capsys.disabled():
        print(
            f"\n  database ({vendor}): {len(actions)} actions, {len(hits)} failures ending {sum(hits)} connections, "
            f"{at_last_failure} at the last; {cut_short} tasks cut short, {retried} actions run again, "
            f"{taken_back} leases taken back; {len(sent)} messages, {sum(sent.values()) - len(sent)} repeated; "
            f"{took:.1f} s"
        )
    assert statuses(actions) == {S.SUCCEEDED: len(actions)}
    # The failures were real: they came mid-batch and met the workers' actions, either cutting a task short
    # (its exception reached django-q2) or failing an attempt that run_action recorded and retried. Which of
    # the two happens depends on where in a task the failure lands; a lock-out that only meets the broker's
    # own queries shows as neither.
    assert len(hits) == times and sum(hits) > 0, f"only {len(hits)} failures before the batch ended: too fast to test"
    assert cut_short + retried > 0, "no worker's action met the failing database"
    # Each effect once: at the mail server, in the outbox, and in the rows and audit entries each action owns.
    assert len(sent) == sum(BATCH[kind] for kind in MAIL_TYPES)
    assert max(sent.values()) == 1, f"sent twice: {[mid for mid, n in sent.items() if n > 1]}"
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxStatus.SENT}
    assert LocalTask.objects.filter(action__in=actions).count() == LocalTask.objects.count() == BATCH["create_task"]
    assert LocalReminder.objects.filter(action__in=actions).count() == LocalReminder.objects.count()
    assert LocalReminder.objects.count() == BATCH["set_reminder"]
    assert Email.objects.filter(archived_at__isnull=False).count() == BATCH["archive_email"]
    for event, kind in (("task.created", "create_task"), ("email.archived", "archive_email")):
        targets = list(AuditEntry.objects.filter(event=event).values_list("target_id", flat=True))
        assert len(targets) == len(set(targets)) == BATCH[kind], f"{event}: {len(targets)} entries"
