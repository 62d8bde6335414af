"""The admin's dashboard at /admin/dashboard/: the figures of actions.stats as charts that refresh themselves.

The page is rendered here with the current figures (plain HTML and CSS bars,
one inline SVG ring), so it reads without JavaScript. Every element that
shows a figure names it by a path into the snapshot ("actions.by_status.
queued.count"; a list is entered by its items' key or name), and
static/actions/dashboard.js fetches /admin/dashboard/stats.json every few
seconds and sets each such element again from the same path. The JSON is the
snapshot exactly as GET /api/v1/stats/ answers it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateparse import parse_datetime

from actions.admin_utils import when
from actions.api.stats import PERMISSION, StatsSnapshotSerializer
from actions.models import ActionStatus
from actions.stats import human_rate, human_seconds, snapshot

REFRESH_MILLISECONDS = 5000
TEMPLATE = "admin/mailroom_dashboard.html"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _state(value: str | None) -> str:
    return str(value or "-").replace("_", " ")


# How each figure reads; dashboard.js has the same four formats.
FORMATS = {"count": _count, "rate": human_rate, "duration": human_seconds, "state": _state}
# A bar's colour says at a glance whether its status is good news, bad news or waiting.
TONES = {
    ActionStatus.SUCCEEDED: "good",
    ActionStatus.FAILED: "warn",
    ActionStatus.DEAD: "bad",
    ActionStatus.PENDING_APPROVAL: "wait",
    ActionStatus.QUEUED: "busy",
    ActionStatus.RUNNING: "busy",
    ActionStatus.REJECTED: "off",
    ActionStatus.EXPIRED: "off",
    ActionStatus.CANCELLED: "off",
    ActionStatus.UNDONE: "off",
}


def lookup(data: Any, dotted: str) -> Any:
    """The figure at `dotted` in the serialized snapshot; a list is entered by its items' key or name."""
    for part in dotted.split("."):
        if isinstance(data, list):
            data = next((item for item in data if part in (item.get("key"), item.get("name"))), None)
        elif isinstance(data, dict):
            data = data.get(part)
        if data is None:
            return None
    return data


def _bars(figures: dict, group: str, rows: list[tuple[str, str, str]], fmt: str = "count") -> dict:
    """A bar chart: each row's bar is as long as its figure against the longest of the chart."""
    values = [lookup(figures, dotted) or 0 for _, dotted, _ in rows]
    longest = max(values, default=0)
    return {
        "group": group,
        "rows": [
            {
                "label": label,
                "path": dotted,
                "tone": tone,
                "format": fmt,
                "text": FORMATS[fmt](lookup(figures, dotted)),
                "width": f"{100 * value / longest if longest else 0:.1f}",
            }
            for (label, dotted, tone), value in zip(rows, values, strict=True)
        ],
    }


def _outcome(figures: dict, window: str, label: str) -> dict:
    base = f"outcomes.{window}"
    return {
        "label": label,
        "base": base,
        **{key: lookup(figures, f"{base}.{key}") for key in ("succeeded", "failed")},
        **{
            f"{key}_width": f"{100 * (lookup(figures, f'{base}.{key}') or 0):.1f}"
            for key in ("success_rate", "failure_rate")
        },
        "success_text": human_rate(lookup(figures, f"{base}.success_rate")),
    }


def charts(figures: dict) -> dict:
    """What the template draws, from the serialized snapshot."""
    actions = figures["actions"]
    times = [
        (f"{kind} {which}", f"processing_times.{kind}.{key}", "busy")
        for kind in ("runs", "actions")
        for which, key in (("median", "median"), ("95th percentile", "p95"))
    ]
    ring = lookup(figures, "outcomes.last_24h.success_rate")
    statuses = [
        (c["label"], f"actions.by_status.{c['key']}.count", TONES.get(c["key"], "")) for c in actions["by_status"]
    ]
    types = [(c["label"], f"actions.by_type.{c['key']}.count", "") for c in actions["by_type"]]
    return {
        "by_status": _bars(figures, "by_status", statuses),
        "by_type": _bars(figures, "by_type", types),
        "outcomes": [_outcome(figures, "last_24h", "Last 24 hours"), _outcome(figures, "all_time", "All time")],
        "ring": {"dash": f"{100 * (ring or 0):.1f}", "text": human_rate(ring)},
        "lanes": _bars(figures, "lanes", [(lane, f"queue_depth.{lane}", "busy") for lane in figures["queue_depth"]]),
        "times": _bars(figures, "times", times, fmt="duration"),
        "ages": _bars(
            figures,
            "ages",
            [("oldest has waited", "approvals.oldest_age", "wait"), ("median wait", "approvals.median_age", "wait")],
            fmt="duration",
        ),
        "circuits": [
            {"name": c["name"], "path": f"circuits.{c['name']}.state", "state": c["state"], "text": _state(c["state"])}
            for c in figures["circuits"]
        ],
    }


def _figures(request: HttpRequest) -> dict:
    """The serialized snapshot, for those who may see every action (the admin's own check made them staff)."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    return StatsSnapshotSerializer(snapshot()).data


def dashboard(request: HttpRequest) -> TemplateResponse:
    """The dashboard page, drawn with the current figures."""
    figures = _figures(request)
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "figures": figures,
        "generated_at": when(parse_datetime(figures["generated_at"])),
        "charts": charts(figures),
        "stats_url": reverse("admin:dashboard_stats"),
        "refresh_ms": REFRESH_MILLISECONDS,
        "refresh_every": human_seconds(REFRESH_MILLISECONDS / 1000),
    }
    return TemplateResponse(request, TEMPLATE, context)


def dashboard_stats(request: HttpRequest) -> JsonResponse:
    """The figures as JSON, for the page to refresh itself: staff only, unlike the API, by session."""
    return JsonResponse(_figures(request))


def _with_dashboard(site_urls):
    """The admin site's URLs with the dashboard's in front (admin_view: staff only, never cached)."""

    def get_urls():
        return [
            path("dashboard/", admin.site.admin_view(dashboard), name="dashboard"),
            path("dashboard/stats.json", admin.site.admin_view(dashboard_stats), name="dashboard_stats"),
            *site_urls(),
        ]

    return get_urls


# The default site is Django's own AdminSite; its URLs are read once, when config/urls.py is imported.
admin.site.get_urls = _with_dashboard(admin.site.get_urls)
