"""Figure 5: how long an urgent action takes to finish with thousands of normal actions queued ahead of it.

A backlog of sizes.urgent_backlog local actions is queued through the real
path; then the main cluster (sizes.workers workers) and the urgent lane's
cluster (one worker, the production default Q_URGENT_WORKERS) start. Once
both are working (a first backlog action and a warm-up urgent action have
succeeded), urgent actions are queued one after another, each timed from
just before it is proposed to its succeeded stamp. How much of the backlog
had not finished by then is counted from the backlog's own stamps: the
proof that the urgent action went past it. Afterwards the workers stop, the
queues are purged and the rest of the backlog is cancelled, so the figures
that follow start clean.
"""

from __future__ import annotations

import statistics

from django.conf import settings
from django.utils import timezone

from actions.models import Action, ActionStatus, Priority
from bench.context import Bench
from bench.data import LOCAL_WORK, cancel_unfinished, ensure_team, queue_actions
from bench.figures import Figure, median
from bench.throughput import wait_succeeded
from tests.processes import Worker

S = ActionStatus
URGENT_ACTIONS = 5
URGENT_WORK = [("create_task", {"title": "The site is down for a customer: call them now"})]


def time_urgent(bench: Bench, backlog: list[int], lane: Worker) -> tuple[float, int]:
    """Queue one urgent action and wait for it: seconds from proposing it to its success, and backlog still open."""
    began = timezone.now()
    [urgent] = queue_actions(1, URGENT_WORK, priority=Priority.URGENT)
    wait_succeeded(bench, [urgent], lane, timeout=60)
    finished = Action.objects.values_list("status_changed_at", flat=True).get(pk=urgent)
    done = Action.objects.filter(pk__in=backlog, status=S.SUCCEEDED, status_changed_at__lte=finished).count()
    return (finished - began).total_seconds(), len(backlog) - done


def measure(bench: Bench) -> list[Figure]:
    """Figure 5: median and slowest of URGENT_ACTIONS urgent actions, seconds, behind the backlog."""
    size = bench.sizes.urgent_backlog
    ensure_team()
    with bench.queueing_like_workers():
        cancel_unfinished()
        bench.say(f"queueing a backlog of {size:,} normal actions")
        backlog = queue_actions(size, LOCAL_WORK)
        try:
            with bench.worker() as main, bench.worker(lane=settings.URGENT_LANE, workers=1) as lane:
                started = Action.objects.filter(pk__in=backlog, status=S.SUCCEEDED)
                bench.wait(started.exists, timeout=120, what="the main cluster's first backlog action")
                time_urgent(bench, backlog, lane)  # warm-up: the lane's cluster is up and has run one
                samples = [time_urgent(bench, backlog, lane) for _ in range(URGENT_ACTIONS)]
                if main.process.poll() is not None:
                    raise RuntimeError(f"the main cluster exited during the measurement:\n{main.output()[-2000:]}")
        finally:
            bench.purge_queues()
            left = cancel_unfinished()
    bench.say(f"cancelled {left:,} backlog actions left over")
    seconds = [took for took, _ in samples]
    waiting = [open_backlog for _, open_backlog in samples]
    if min(waiting) == 0:
        raise RuntimeError("the backlog had drained before an urgent action finished: nothing was overtaken")
    detail = {
        "backlog": size,
        "urgent_actions": URGENT_ACTIONS,
        "main_workers": bench.sizes.workers,
        "urgent_lane_workers": 1,
        "timed": "just before proposing the urgent action to its succeeded stamp; one at a time",
        "seconds": [round(took, 3) for took in seconds],
        "mean_seconds": round(statistics.fmean(seconds), 3),
        "backlog_not_finished_at_each": waiting,
        "backlog_left_and_cancelled": left,
    }
    bench.say(f"urgent: median {median(seconds):.2f} s, max {max(seconds):.2f} s, backlog open {waiting}")
    return [
        Figure(
            key="urgent_lane_median",
            label=f"Urgent action done, {size:,} normal queued ahead, median",
            value=round(median(seconds), 3),
            unit="s",
            detail=detail,
        ),
        Figure(
            key="urgent_lane_max",
            label=f"Urgent action done, {size:,} normal queued ahead, slowest of {URGENT_ACTIONS}",
            value=round(max(seconds), 3),
            unit="s",
            detail=detail,
        ),
    ]
