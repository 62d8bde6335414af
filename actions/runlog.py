"""Small pieces every part of the pipeline shares: a run's log line, and queueing a run for a worker."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

PROCESS_TASK = "actions.pipeline.process_run"


def log_line(text: str, at=None) -> dict[str, str]:
    """One log line of a run step: when, and what."""
    return {"at": (at or timezone.now()).isoformat(timespec="milliseconds"), "message": text}


def start_run(email, lines: list[str], *, failed: str = ""):
    """Start an email's processing run with its intake step done and logged.

    `failed` is the reason intake refused the email (quarantine): the run
    then ends at once, failed, with that reason as its last log line.
    """
    from actions.models import ProcessingRun, RunStatus, RunStep, StepName

    now = timezone.now()
    status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
    run = ProcessingRun.objects.create(
        email=email,
        status=RunStatus.FAILED if failed else RunStatus.PENDING,
        started_at=now,
        finished_at=now if failed else None,
        reason=failed,
    )
    lines = [*lines, failed] if failed else lines
    RunStep.objects.create(
        run=run,
        name=StepName.INTAKE,
        status=status,
        started_at=now,
        finished_at=now,
        log=[log_line(text, now) for text in lines],
    )
    return run


def enqueue_run_on_commit(run_id: int) -> None:
    """Have a worker process the run once the current transaction commits."""
    transaction.on_commit(lambda: async_task(PROCESS_TASK, run_id, task_name=f"run-{run_id}"))
