"""Figures about the work: what the dashboard, the stats API, the `stats` command, /health/ and /metrics read.

Every figure is computed from the database, so every process (web, workers)
agrees on it, whatever the broker. `snapshot()` costs the same few queries
however many rows there are: counts are aggregates, and percentiles are
taken over a bounded sample of the most recent work.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, QuerySet
from django.utils import timezone

from actions.models import Action, ActionStatus, ActionType, AuditEntry, Priority, ProcessingRun, RunStatus
from approvals.models import Approval, ApprovalStatus
from integrations import circuit, registry

NORMAL_LANE = "normal"
# Success and failure rates are given over this recent window, and over all time.
RECENT_WINDOW = timedelta(hours=24)
# Processing-time percentiles are taken over at most this many of the most recently finished runs and actions.
TIMING_SAMPLE = 1000
FAILED = (ActionStatus.FAILED, ActionStatus.DEAD)
# Runs and actions that ran to an end, so that their duration means "how long the work took".
ENDED_RUNS = (RunStatus.SUCCEEDED, RunStatus.FAILED)
ENDED_ACTIONS = (ActionStatus.SUCCEEDED, *FAILED)
FINISHED_RUNS = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def queue_depth() -> dict[str, int]:
    """Actions queued and waiting for a worker, per lane: {"normal": n, "urgent": m}."""
    counts = Action.objects.filter(status=ActionStatus.QUEUED).aggregate(
        urgent=Count("pk", filter=Q(priority__gte=Priority.URGENT)),
        normal=Count("pk", filter=Q(priority__lt=Priority.URGENT)),
    )
    return {NORMAL_LANE: counts["normal"], settings.URGENT_LANE: counts["urgent"]}


def percentile(values: list[float], fraction: float) -> float | None:
    """The `fraction` (0 to 1) percentile of sorted `values`, interpolated as PostgreSQL's percentile_cont does."""
    if not values:
        return None
    rank = fraction * (len(values) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return values[low] + (values[high] - values[low]) * (rank - low)


def human_seconds(seconds: float | None) -> str:
    """A duration for people: "850 ms", "12.5 s", "4.2 min", "3.1 h", "2.0 d", or "-" for none."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def human_rate(rate: float | None) -> str:
    """A rate (0 to 1) as a percentage for people, or "-" when there is none."""
    return "-" if rate is None else f"{rate * 100:.1f}%"


def duration(start: str, end: str) -> ExpressionWrapper:
    """`end - start` of a row, as the database computes it (the dashboard's percentiles, /metrics' histograms)."""
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def _timings(queryset: QuerySet, start: str, end: str) -> dict:
    """Median and 95th percentile, in seconds, of `end - start` over the most recent TIMING_SAMPLE rows."""
    took = duration(start, end)
    # The database subtracts and sorts; only the sample's durations cross over.
    durations = (
        queryset.filter(**{f"{start}__isnull": False, f"{end}__isnull": False})
        .order_by(f"-{end}")
        .annotate(took=took)
        .values_list("took", flat=True)[:TIMING_SAMPLE]
    )
    seconds = sorted(max(duration.total_seconds(), 0.0) for duration in durations)
    return {"count": len(seconds), "median": percentile(seconds, 0.5), "p95": percentile(seconds, 0.95)}


def _outcomes(succeeded: int, failed: int) -> dict:
    ended = succeeded + failed
    return {
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": succeeded / ended if ended else None,
        "failure_rate": failed / ended if ended else None,
    }


def _actions(since: datetime) -> tuple[dict, dict]:
    """Actions by status and by type (one query), and their outcomes recently and ever (one more)."""
    by_status = dict.fromkeys(ActionStatus.values, 0)
    by_type = dict.fromkeys(ActionType.values, 0)
    for row in Action.objects.order_by().values("status", "type").annotate(n=Count("pk")):
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["n"]
        by_type[row["type"]] = by_type.get(row["type"], 0) + row["n"]
    recent = Q(status_changed_at__gte=since)
    counts = Action.objects.filter(status__in=ENDED_ACTIONS).aggregate(
        succeeded=Count("pk", filter=recent & Q(status=ActionStatus.SUCCEEDED)),
        failed=Count("pk", filter=recent & Q(status__in=FAILED)),
    )
    actions = {
        "total": sum(by_status.values()),
        "by_status": [
            {"key": key, "label": ActionStatus(key).label, "count": by_status[key]} for key in ActionStatus.values
        ],
        "by_type": [{"key": key, "label": ActionType(key).label, "count": by_type[key]} for key in ActionType.values],
    }
    outcomes = {
        "last_24h": _outcomes(counts["succeeded"], counts["failed"]),
        "all_time": _outcomes(by_status[ActionStatus.SUCCEEDED], sum(by_status[status] for status in FAILED)),
    }
    return actions, outcomes


def _approvals(now: datetime) -> dict:
    """Approvals waiting for a decision, with the age of the oldest and the median, in seconds."""
    pending = Approval.objects.filter(status=ApprovalStatus.PENDING).order_by()
    counts = pending.aggregate(waiting=Count("pk"), oldest=Min("requested_at"))
    waiting = counts["waiting"]
    median_age = None
    if waiting:
        # The middle one or two by request time: an exact median, one small query whatever the count.
        middle = pending.order_by("requested_at", "pk").values_list("requested_at", flat=True)[
            (waiting - 1) // 2 : waiting // 2 + 1
        ]
        ages = [(now - requested).total_seconds() for requested in middle]
        median_age = sum(ages) / len(ages)
    return {
        "waiting": waiting,
        "oldest_requested_at": counts["oldest"],
        "oldest_age": (now - counts["oldest"]).total_seconds() if waiting else None,
        "median_age": median_age,
    }


def _circuits() -> list[dict]:
    """Each integration's circuit: every configured capability (closed until it fails) and any other known one."""
    states = circuit.states()
    names = sorted(set(registry.FACTORIES) | set(states))
    return [{"name": name, "state": states.get(name, "closed")} for name in names]


def snapshot(now: datetime | None = None) -> dict:
    """Every figure of the dashboard at once, in eight queries whatever the number of rows.

    - actions: total, and counts by status and by type (every status and type, zeros included);
    - outcomes: succeeded against failed or dead actions, over the last 24 hours (by the time their
      status last changed) and over all time, with the rates (None when nothing ended);
    - queue_depth: queued actions per lane;
    - processing_times: median and 95th percentile in seconds of runs (started to finished, runs that
      succeeded or failed) and of actions (claimed by a worker to their outcome: succeeded, failed or
      dead), over a bounded sample: the TIMING_SAMPLE most recently finished of each. The database
      computes the durations; the percentiles are interpolated here, so SQLite and PostgreSQL agree;
    - approvals: how many wait for a decision, the age of the oldest and the median age (exact);
    - circuits: each integration's circuit breaker state.
    """
    now = now or timezone.now()
    actions, outcomes = _actions(now - RECENT_WINDOW)
    return {
        "generated_at": now,
        "actions": actions,
        "outcomes": outcomes,
        "queue_depth": queue_depth(),
        "processing_times": {
            "runs": _timings(ProcessingRun.objects.filter(status__in=ENDED_RUNS), "started_at", "finished_at"),
            "actions": _timings(Action.objects.filter(status__in=ENDED_ACTIONS), "started_at", "status_changed_at"),
        },
        "approvals": _approvals(now),
        "circuits": _circuits(),
    }


def run_status(run: ProcessingRun) -> dict:
    """A run's live status: its status, its steps' timeline and when anything last moved.

    What a run's admin page polls, and the shape of GET /api/v1/runs/{id}/status/.
    Reads `run.steps.all()` (prefetch the steps) and the run's last audit entry: a pause,
    resume or cancel moves no timestamp of the run, but is audited.
    """
    steps = list(run.steps.all())
    moments = [run.created_at, run.started_at, run.finished_at]
    moments += [moment for step in steps for moment in (step.started_at, step.finished_at)]
    moments.append(AuditEntry.objects.for_object(run).aggregate(last=Max("created_at"))["last"])
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "reason": run.reason,
        "finished": run.status in FINISHED_RUNS,
        "steps": [
            {
                "name": step.name,
                "label": step.get_name_display(),
                "status": step.status,
                "status_label": step.get_status_display(),
                "started_at": step.started_at,
                "finished_at": step.finished_at,
            }
            for step in steps
        ],
        "updated_at": max(moment for moment in moments if moment is not None),
    }
