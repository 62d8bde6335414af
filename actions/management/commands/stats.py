"""manage.py stats: the dashboard's figures on the command line, as a table or as JSON."""

from __future__ import annotations

import json

from actions.api.stats import StatsSnapshotSerializer
from actions.management.base import DONE, ManualCommand
from actions.stats import RECENT_WINDOW, TIMING_SAMPLE, human_rate, human_seconds, snapshot

WIDTH = 28  # the label column


class Command(ManualCommand):
    help = (
        "Print Mailroom's figures: actions by status and by type, success and failure rates (last 24 hours and "
        "all time), queue depth per lane, processing times of runs and actions (median and 95th percentile "
        f"over the {TIMING_SAMPLE} most recently finished), approvals waiting and their age, and each "
        "integration's circuit state. The same figures as the admin dashboard and GET /api/v1/stats/."
    )
    exit_codes = {DONE: "printed"}

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json",
            dest="as_json",
            action="store_true",
            help="Print one JSON object, shaped as GET /api/v1/stats/ answers, instead of the table.",
        )

    def handle(self, *args, as_json: bool = False, **options) -> None:
        figures = snapshot()
        if as_json:
            self.stdout.write(json.dumps(StatsSnapshotSerializer(figures).data, indent=2))
        else:
            self.stdout.write("\n".join(table(figures)))


def _row(label: str, *values: object) -> str:
    """An indented row: its label, then each value right-aligned in its column."""
    return f"  {label:<{WIDTH}}" + "".join(f"{value!s:>14}" for value in values)


def _heading(title: str, *columns: str) -> str:
    """A section's title over its rows' labels, with the columns' names over their values."""
    return f"{title:<{WIDTH + 2}}" + "".join(f"{column:>14}" for column in columns)


def table(figures: dict) -> list[str]:
    """The snapshot as lines of a plain-text table."""
    actions, waiting = figures["actions"], figures["approvals"]
    hours = int(RECENT_WINDOW.total_seconds() // 3600)
    lines = [f"Mailroom figures at {figures['generated_at']:%Y-%m-%d %H:%M:%S %Z}", ""]
    for title, counts in (("Actions by status", actions["by_status"]), ("Actions by type", actions["by_type"])):
        lines.append(f"{title} ({actions['total']} in all)")
        shown = [_row(count["label"], count["count"]) for count in counts if count["count"]]
        lines += [*(shown or ["  none"]), ""]
    lines.append(_heading("Outcomes", "succeeded", "failed", "success rate"))
    windows = {f"last {hours} h": figures["outcomes"]["last_24h"], "all time": figures["outcomes"]["all_time"]}
    for label, outcome in windows.items():
        lines.append(_row(label, outcome["succeeded"], outcome["failed"], human_rate(outcome["success_rate"])))
    lines += ["", "Queue depth (queued actions per lane)"]
    lines += [_row(lane, depth) for lane, depth in figures["queue_depth"].items()]
    lines += ["", _heading("Processing times", "finished", "median", "95th pct")]
    for label, timing in figures["processing_times"].items():
        lines.append(_row(label, timing["count"], human_seconds(timing["median"]), human_seconds(timing["p95"])))
    lines += [
        "",
        "Approvals waiting",
        _row("waiting", waiting["waiting"]),
        _row("oldest has waited", human_seconds(waiting["oldest_age"])),
        _row("median wait", human_seconds(waiting["median_age"])),
        "",
        "Integrations' circuits",
        *(_row(circuit["name"], circuit["state"].replace("_", " ")) for circuit in figures["circuits"]),
    ]
    return lines
