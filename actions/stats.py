"""Figures about the work: what the dashboard, the stats API, the `stats` command, /health/ and /metrics read.

Every figure is computed from the database, so every process (web, workers)
agrees on it, whatever the broker.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q

from actions.models import Action, ActionStatus, Priority

NORMAL_LANE = "normal"


def queue_depth() -> dict[str, int]:
    """Actions queued and waiting for a worker, per lane: {"normal": n, "urgent": m}."""
    counts = Action.objects.filter(status=ActionStatus.QUEUED).aggregate(
        urgent=Count("pk", filter=Q(priority__gte=Priority.URGENT)),
        normal=Count("pk", filter=Q(priority__lt=Priority.URGENT)),
    )
    return {NORMAL_LANE: counts["normal"], settings.URGENT_LANE: counts["urgent"]}
