"""Small pieces every part of the pipeline shares: a run's log line, and queueing a run for a worker."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

PROCESS_TASK = "actions.pipeline.process_run"


def log_line(text: str, at=None) -> dict[str, str]:
    """One log line of a run step: when, and what."""
    return {"at": (at or timezone.now()).isoformat(timespec="milliseconds"), "message": text}


def enqueue_run_on_commit(run_id: int) -> None:
    """Have a worker process the run once the current transaction commits."""
    transaction.on_commit(lambda: async_task(PROCESS_TASK, run_id, task_name=f"run-{run_id}"))
