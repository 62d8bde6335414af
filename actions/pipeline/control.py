"""A person's hold on one run: pause, resume and cancel, each audited.

Pausing stops the pipeline at its next step boundary and holds the run's
queued actions (workers leave them queued); resuming picks up where it
stopped. Cancelling ends the run and cancels every action of it that has not
run yet.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from actions.audit import record_audit
from actions.executor import cancel_action, enqueue_due
from actions.models import Action, ActionStatus, EmailStatus, ProcessingRun, RunStatus, StepName
from actions.runlog import enqueue_run_on_commit, start_run
from actions.transitions import TransitionError

# Actions a cancelled run takes down with it: everything that has not started.
NOT_STARTED = (
    ActionStatus.PROPOSED,
    ActionStatus.PENDING_APPROVAL,
    ActionStatus.APPROVED,
    ActionStatus.QUEUED,
    ActionStatus.FAILED,
)


class RunControlError(ValueError):
    """The run cannot do that now; the message says why."""


def _open_actions(run: ProcessingRun):
    return run.actions.filter(status__in=NOT_STARTED)


def _pipeline_done(run: ProcessingRun) -> bool:
    return run.steps.filter(name=StepName.NOTIFY, status=RunStatus.SUCCEEDED).exists()


def pause_run(run: ProcessingRun, *, acting_user=None, actor: str = "", reason: str = "") -> ProcessingRun:
    """Hold the run: the pipeline stops at its next step and its queued actions wait."""
    with transaction.atomic():
        run = ProcessingRun.objects.select_for_update().get(pk=run.pk)
        pausable = run.status in (RunStatus.PENDING, RunStatus.RUNNING) or (
            run.status == RunStatus.SUCCEEDED and _open_actions(run).exists()
        )
        if not pausable:
            raise RunControlError(f"Run {run.pk} is {run.get_status_display().lower()}; there is nothing to pause.")
        previous = run.status
        run.status, run.reason = RunStatus.PAUSED, reason or "paused"
        run.save(update_fields=["status", "reason"])
        record_audit(
            "run.paused", target=run, acting_user=acting_user, actor=actor, details={"from": previous, "reason": reason}
        )
    return run


def resume_run(run: ProcessingRun, *, acting_user=None, actor: str = "", reason: str = "") -> ProcessingRun:
    """Go on from where the run stopped, and release its held actions to the workers."""
    with transaction.atomic():
        run = ProcessingRun.objects.select_for_update().get(pk=run.pk)
        if run.status != RunStatus.PAUSED:
            raise RunControlError(f"Run {run.pk} is {run.get_status_display().lower()}, not paused.")
        done = _pipeline_done(run)
        run.status = RunStatus.SUCCEEDED if done else RunStatus.PENDING
        run.reason = ""
        run.save(update_fields=["status", "reason"])
        record_audit("run.resumed", target=run, acting_user=acting_user, actor=actor, details={"reason": reason})
        enqueue_due(timezone.now(), run_id=run.pk)
        if not done:
            enqueue_run_on_commit(run.pk)
    return run


def cancel_run(run: ProcessingRun, *, acting_user=None, actor: str = "", reason: str = "") -> list[Action]:
    """End the run and cancel its actions that have not started; return those cancelled."""
    reason = reason or "run cancelled"
    with transaction.atomic():
        run = ProcessingRun.objects.select_for_update().get(pk=run.pk)
        if run.status in (RunStatus.CANCELLED, RunStatus.FAILED) or (
            run.status == RunStatus.SUCCEEDED and not _open_actions(run).exists()
        ):
            raise RunControlError(f"Run {run.pk} is {run.get_status_display().lower()}; there is nothing to cancel.")
        previous = run.status
        run.status, run.reason, run.finished_at = RunStatus.CANCELLED, reason, timezone.now()
        run.save(update_fields=["status", "reason", "finished_at"])
        cancelled = []
        for action in _open_actions(run).order_by("pk"):
            try:
                cancelled.append(cancel_action(action, acting_user=acting_user, actor=actor, reason=reason))
            except TransitionError:
                continue  # A worker claimed it meanwhile; it runs to its end and is audited there.
        record_audit(
            "run.cancelled",
            target=run,
            acting_user=acting_user,
            actor=actor,
            details={"from": previous, "reason": reason, "cancelled_actions": [a.pk for a in cancelled]},
        )
    return cancelled


def reprocess_email(email, *, acting_user=None, actor: str = "") -> ProcessingRun:
    """Start a new run for an email (after a failed analysis, or with new rules); never for quarantined mail."""
    if email.status == EmailStatus.QUARANTINED:
        raise RunControlError(f"{email}: quarantined mail is not processed ({email.status_reason}).")
    with transaction.atomic():
        run = start_run(email, [f"Processing again, asked by {actor or acting_user or 'system'}."])
        record_audit("run.started", target=run, acting_user=acting_user, actor=actor, details={"email": email.pk})
        enqueue_run_on_commit(run.pk)
    return run


def recover_runs(now, *, lease_seconds: int, requeue_after_seconds: int) -> dict[str, int]:
    """The sweeper's part for runs: take back runs whose worker died, and queue runs nobody picked up.

    A running run whose steps have not moved for a lease is presumed
    abandoned and made pending again (its finished steps are not redone);
    a pending run older than `requeue_after_seconds` is queued again (the
    Redis broker can lose a task; the claim keeps a run from running twice).
    """
    from django.conf import settings
    from django.db.models import Max, Q

    stale = now - timedelta(seconds=lease_seconds)
    abandoned = (
        ProcessingRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=stale)
        .annotate(last_move=Max("steps__started_at"))
        .filter(Q(last_move__lt=stale) | Q(last_move__isnull=True))
    )
    taken_back, requeued = 0, 0
    with transaction.atomic():
        for run in abandoned[:1000]:
            if ProcessingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(status=RunStatus.PENDING):
                record_audit("run.taken_back", target=run, actor="sweeper", details={"reason": "no progress"})
                taken_back += 1
                if settings.PROCESS_ON_INTAKE:
                    enqueue_run_on_commit(run.pk)
        if settings.PROCESS_ON_INTAKE:
            waiting = ProcessingRun.objects.filter(
                status=RunStatus.PENDING, created_at__lt=now - timedelta(seconds=requeue_after_seconds)
            )
            for run_id in waiting.order_by("created_at").values_list("pk", flat=True)[:1000]:
                enqueue_run_on_commit(run_id)
                requeued += 1
    return {"runs_taken_back": taken_back, "runs_requeued": requeued}
