"""Prometheus metrics, computed from the database at scrape time, so web and worker processes all agree.

Workers are separate processes (and machines): counters kept in one process's
memory would show only what that process did and vanish on restart. So the
collector asks the database, in a fixed number of aggregate queries whatever
the number of rows: figures by status are gauges (how many are in each state
now), created totals are counters (rows are never deleted), and histograms
are bucket counts computed in SQL. Integration calls are counted in the
database by the circuit breaker (IntegrationCalls). Worker heartbeats come
from django-q2's cluster stats, not the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.lookups import LessThanOrEqual
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from actions import stats
from actions.models import Action, ProcessingRun
from approvals.models import Approval
from integrations import circuit
from integrations.models import CircuitState, IntegrationCalls
from observability.workers import clusters_seen

MINUTE, HOUR, DAY = 60, 3600, 86400


@dataclass(frozen=True)
class Timing:
    """A histogram of how long rows took from `start` to `end`, counted per bucket in the grouping query itself."""

    start: str
    end: str
    buckets: tuple[float, ...]
    where: Q = Q()  # noqa: RUF009 - an empty Q is immutable in use

    def aggregates(self) -> dict:
        took = stats.duration(self.start, self.end)
        timed = self.where & Q(**{f"{self.start}__isnull": False, f"{self.end}__isnull": False})
        return {
            "timed": Count("pk", filter=timed),
            "took": Sum(took, filter=timed),
            **{
                f"le_{i}": Count("pk", filter=timed & Q(LessThanOrEqual(took, timedelta(seconds=bound))))
                for i, bound in enumerate(self.buckets)
            },
        }

    def add(self, family: HistogramMetricFamily, labels: list[str], row: dict) -> None:
        """Add the row's histogram under `labels`; rows with nothing timed add none."""
        if not row["timed"]:
            return
        buckets = [(floatToGoString(bound), row[f"le_{i}"]) for i, bound in enumerate(self.buckets)]
        took = row["took"]
        family.add_metric(labels, [*buckets, ("+Inf", row["timed"])], took.total_seconds() if took else 0.0)


# The last attempt of each action that has finished one: claimed at started_at, finished when its status moved.
ACTION_RUN = Timing(
    "started_at",
    "status_changed_at",
    (0.1, 0.5, 1, 2.5, 5, 10, 30, MINUTE, 5 * MINUTE),
    Q(status__in=stats.ENDED_ACTIONS),
)
RUN = Timing("started_at", "finished_at", (0.5, 1, 5, 15, 30, MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR))
DECISION = Timing(
    "requested_at", "decided_at", (MINUTE, 5 * MINUTE, 15 * MINUTE, HOUR, 4 * HOUR, DAY, 2 * DAY, 7 * DAY)
)


def grouped(rows: QuerySet, by: Iterable[str], timing: Timing) -> list[dict]:
    """One query: the rows counted per group of `by`, with `timing`'s histogram per group."""
    return list(rows.order_by().values(*by).annotate(n=Count("pk"), **timing.aggregates()).order_by(*by))


def action_metrics() -> Iterator[Metric]:
    rows = grouped(Action.objects.all(), ("type", "status"), ACTION_RUN)
    current = GaugeMetricFamily("mailroom_actions", "Actions in each status now.", labels=["type", "status"])
    created = CounterMetricFamily("mailroom_actions_created", "Actions proposed, ever.", labels=["type"])
    took = HistogramMetricFamily(
        "mailroom_action_duration_seconds",
        "How long the last attempt of each finished action ran (succeeded, failed or dead).",
        labels=["type", "status"],
    )
    per_type: dict[str, int] = defaultdict(int)
    for row in rows:
        current.add_metric([row["type"], row["status"]], row["n"])
        per_type[row["type"]] += row["n"]
        ACTION_RUN.add(took, [row["type"], row["status"]], row)
    for action_type, n in per_type.items():
        created.add_metric([action_type], n)
    yield from (current, created, took)


def by_status(name: str, noun: str, rows: QuerySet, timing: Timing, timed: str) -> Iterator[Metric]:
    """Gauge by status, created counter and histogram by status, for runs and approvals (one query)."""
    current = GaugeMetricFamily(f"mailroom_{name}s", f"{noun} in each status now.", labels=["status"])
    created = CounterMetricFamily(f"mailroom_{name}s_created", f"{noun}, ever.")
    took = HistogramMetricFamily(f"mailroom_{name}_{timed}_seconds", f"{noun}: {timed} time.", labels=["status"])
    rows = grouped(rows, ("status",), timing)
    for row in rows:
        current.add_metric([row["status"]], row["n"])
        timing.add(took, [row["status"]], row)
    created.add_metric([], sum(row["n"] for row in rows))
    yield from (current, created, took)


def integration_metrics() -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "mailroom_integration_calls",
        "Calls the executor made to an outside system, by outcome (failures are transient ones).",
        labels=["capability", "outcome"],
    )
    for capability, outcome, count in IntegrationCalls.objects.order_by("capability", "outcome").values_list(
        "capability", "outcome", "count"
    ):
        calls.add_metric([capability, outcome], count)
    states = GaugeMetricFamily(
        "mailroom_circuit_state", "Each integration's circuit breaker: 1 for its state.", labels=["capability", "state"]
    )
    for capability, current in sorted(circuit.states().items()):
        for state in CircuitState.values:
            states.add_metric([capability, state], int(state == current))
    yield from (calls, states)


def queue_metrics() -> Iterator[Metric]:
    depth = GaugeMetricFamily("mailroom_queue_depth", "Actions queued and waiting for a worker.", labels=["lane"])
    for lane, n in stats.queue_depth().items():
        depth.add_metric([lane], n)
    clusters = clusters_seen()
    yield depth
    yield GaugeMetricFamily(
        "mailroom_worker_clusters", "django-q2 clusters whose heartbeat is current.", value=len(clusters)
    )
    yield GaugeMetricFamily(
        "mailroom_worker_processes", "Worker processes in those clusters.", value=sum(c.workers for c in clusters)
    )


class MailroomCollector:
    """Every Mailroom metric, read fresh from the database on each scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from action_metrics()
        yield from by_status("run", "Processing runs", ProcessingRun.objects.all(), RUN, "duration")
        yield from by_status("approval", "Approvals", Approval.objects.all(), DECISION, "decision")
        yield from integration_metrics()
        yield from queue_metrics()


# A registry of our own: the default one also holds this process's Python and
# platform metrics, which differ per web process and would only confuse.
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(MailroomCollector())
