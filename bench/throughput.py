"""Figures 1 and 7: actions executed per second by real workers, against bare django-q2 tasks, and as the store grows.

Mailroom's actions are proposed and queued through the real path, six in
ten working locally (tasks, reminders, the mailbox) and four in ten sending
a message to the run's loopback SMTP server, before the cluster starts; the
bare baseline is as many no-op tasks on the same broker with the same
number of workers. Both rates are counted the same way, from the times
stamped on the rows as each one finished (Action.status_changed_at when it
succeeded; django_q's Task.stopped): n - 1 completions over the span from
the first to the last, so the cluster's start-up is left out. (Task.started
cannot stand for the first claim: django-q2 stamps it when the task is
enqueued.)

A batch that loses or repeats work prints no figure: every action must
succeed and every message arrive at the SMTP server exactly once.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django_q.models import Task
from django_q.tasks import async_task

from actions.models import Action, ActionStatus
from bench.context import Bench
from bench.data import MAILING, MIXED_WORK, cancel_unfinished, ensure_stored_actions, ensure_team, queue_actions
from bench.figures import Figure
from bench.tasks import NOOP
from tests.processes import Worker

S = ActionStatus
STUCK = (S.DEAD, S.FAILED, S.CANCELLED)


@dataclass
class Run:
    """A batch's completions: how many, the first and last completion time, and what was checked."""

    count: int
    first: datetime
    last: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.last - self.first).total_seconds()

    @property
    def rate(self) -> float:
        return (self.count - 1) / self.seconds

    def summary(self) -> dict[str, Any]:
        return {"count": self.count, "seconds": round(self.seconds, 2), "per_second": round(self.rate, 1)}


def load_average() -> float:
    """The machine's load over the last minute: the rates are only comparable on a machine equally busy."""
    return round(os.getloadavg()[0], 2)


def statuses(ids: list[int]) -> Counter[str]:
    return Counter(Action.objects.filter(pk__in=ids).values_list("status", flat=True))


def wait_succeeded(bench: Bench, ids: list[int], worker: Worker, *, timeout: float) -> None:
    """Wait until every action in `ids` succeeded; fail at once, with the reasons, when one cannot."""

    def all_succeeded() -> bool:
        counts = statuses(ids)
        if any(counts[status] for status in STUCK):
            errors = Counter(
                Action.objects.filter(pk__in=ids, status__in=STUCK).values_list("last_error", flat=True)
            ).most_common(3)
            raise RuntimeError(f"actions did not succeed: {dict(counts)}; errors: {errors}")
        return counts[S.SUCCEEDED] == len(ids)

    try:
        bench.wait(all_succeeded, timeout=timeout, what=f"{len(ids)} actions", every=0.25)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {dict(statuses(ids))}; the worker's log ends:\n{worker.output()[-2000:]}") from None


def check_mail(bench: Bench, ids: list[int]) -> dict[str, int]:
    """Every message the batch's actions sent arrived at the SMTP server, each exactly once."""
    results = Action.objects.filter(pk__in=ids, type__in=MAILING).values_list("result", flat=True)
    expected = [result["message_id"] for result in results]
    arrived = bench.smtp.message_id_counts()
    missing = [message_id for message_id in expected if arrived[message_id] == 0]
    repeated = [message_id for message_id in expected if arrived[message_id] > 1]
    if missing or repeated:
        raise RuntimeError(
            f"of {len(expected)} messages sent, {len(missing)} never arrived (e.g. {missing[:2]}) "
            f"and {len(repeated)} arrived more than once (e.g. {repeated[:2]})"
        )
    return {"messages_sent": len(expected), "messages_arrived_once": len(expected)}


def run_actions(bench: Bench, count: int) -> Run:
    """Queue `count` mixed actions, run them with a fresh cluster, check the work; their completions."""
    bench.say(f"queueing {count:,} actions")
    ids = queue_actions(count, MIXED_WORK)
    bench.say(f"running them with {bench.sizes.workers} workers")
    with bench.worker() as worker:
        wait_succeeded(bench, ids, worker, timeout=120 + count / 2)
    mail = check_mail(bench, ids)
    span = Action.objects.filter(pk__in=ids).aggregate(first=Min("status_changed_at"), last=Max("status_changed_at"))
    kinds = Counter(Action.objects.filter(pk__in=ids).values_list("type", flat=True))
    detail = {"types": dict(sorted(kinds.items())), **mail, "load_average_after": load_average()}
    return Run(count, span["first"], span["last"], detail)


def run_bare(bench: Bench, count: int) -> Run:
    """Queue `count` no-op tasks, run them with a fresh cluster like Mailroom's; their completions."""
    since = timezone.now()
    bench.say(f"queueing {count:,} bare tasks")
    with transaction.atomic():
        for _ in range(count):
            async_task(NOOP)
    tasks = Task.objects.filter(func=NOOP, started__gte=since)
    with bench.worker() as worker:
        try:
            bench.wait(lambda: tasks.count() >= count, timeout=120 + count / 5, what=f"{count} bare tasks", every=0.25)
        except TimeoutError as exc:
            done = tasks.count()
            raise TimeoutError(f"{exc}: {done} done; the worker's log ends:\n{worker.output()[-2000:]}") from None
    failed = tasks.filter(success=False).count()
    if failed or tasks.count() != count:
        raise RuntimeError(f"of {count} bare tasks, {tasks.count()} ran and {failed} failed")
    span = tasks.aggregate(first=Min("stopped"), last=Max("stopped"))
    return Run(count, span["first"], span["last"], {"load_average_after": load_average()})


def broker_name() -> str:
    return "Redis" if settings.REDIS_URL else f"ORM ({connection.vendor})"


def measure(bench: Bench) -> list[Figure]:
    """Figure 1: Mailroom's actions per second, and the bare rate of the same broker and workers."""
    ensure_team()
    with bench.queueing_like_workers():
        cancelled = cancel_unfinished()
        bare = run_bare(bench, bench.sizes.bare_tasks)
        bench.say(f"bare tasks: {bare.rate:.1f}/s")
        mailroom = run_actions(bench, bench.sizes.throughput_actions)
        bench.say(f"actions: {mailroom.rate:.1f}/s")
    bench.notes["throughput"] = mailroom.rate
    return [
        Figure(
            key="action_throughput",
            label="Action throughput (real workers, local and mail actions)",
            value=round(mailroom.rate, 1),
            unit="/s",
            baseline=round(bare.rate, 1),
            baseline_label="bare django-q2 no-op tasks, same broker and workers",
            ratio=round(mailroom.rate / bare.rate, 3),
            target=0.5,
            detail={
                "workers": bench.sizes.workers,
                "broker": broker_name(),
                "timed": "first to last completion stamped on the rows; (n - 1) / span",
                "actions": {**mailroom.summary(), **mailroom.detail},
                "bare_tasks": {**bare.summary(), **bare.detail},
                "stored_actions": Action.objects.count(),
                "left_over_work_cancelled": cancelled,
            },
        )
    ]


def measure_growth(bench: Bench) -> list[Figure]:
    """Figure 7: the same action throughput with the store topped up to each of sizes.stored_steps actions."""
    ensure_team()
    empty_store = bench.notes.get("throughput")
    figures = []
    with bench.queueing_like_workers():
        cancel_unfinished()
        for step in bench.sizes.stored_steps:
            ensure_stored_actions(step, say=bench.say)
            stored = Action.objects.count()
            run = run_actions(bench, bench.sizes.throughput_actions)
            bench.say(f"actions with {stored:,} stored: {run.rate:.1f}/s")
            figures.append(
                Figure(
                    key=f"throughput_at_{step}",
                    label=f"Action throughput, {step:,}+ stored actions",
                    value=round(run.rate, 1),
                    unit="/s",
                    baseline=round(empty_store, 1) if empty_store else None,
                    baseline_label="figure 1 (the store before it grew)",
                    ratio=round(run.rate / empty_store, 3) if empty_store else None,
                    detail={
                        "stored_actions_before": stored,
                        "workers": bench.sizes.workers,
                        **run.summary(),
                        **run.detail,
                    },
                )
            )
    return figures
