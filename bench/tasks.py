"""The bare django-q2 task that figure 1 compares Mailroom's actions with."""

from __future__ import annotations

NOOP = "bench.tasks.noop"


def noop() -> None:
    """Nothing: what running it costs is the queue's own work (fetch, pickle, result saved), the baseline."""
