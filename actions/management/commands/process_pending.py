"""manage.py process_pending: take waiting processing runs through analysis, routing and notification."""

from __future__ import annotations

from django.core.management.base import CommandError

from actions.management.base import CANNOT_START, DONE, FAILED, ManualCommand
from actions.models import ProcessingRun, RunStatus
from actions.pipeline import process_runs


class Command(ManualCommand):
    help = (
        "Process the runs waiting in `pending` (mail stored with PROCESS_ON_INTAKE off, or while no worker ran), "
        "oldest first, in batches whose analyses run concurrently. Paused and cancelled runs are left alone."
    )
    exit_codes = {
        DONE: "all succeeded (or none was waiting)",
        FAILED: "some runs failed (their emails wait in the review queue)",
    }
    shows_progress = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Process at most this many runs.")
        parser.add_argument("--batch-size", type=int, default=50, help="Runs analysed together (default 50).")
        parser.add_argument(
            "--concurrency", type=int, default=None, help="Analyses at once (default: ANALYSIS_CONCURRENCY)."
        )

    def handle(self, *args, limit: int | None, batch_size: int, concurrency: int | None, **options) -> None:
        if batch_size < 1 or (limit is not None and limit < 1) or (concurrency is not None and concurrency < 1):
            raise CommandError("--limit, --batch-size and --concurrency must be 1 or more.", returncode=CANNOT_START)
        pending = ProcessingRun.objects.filter(status=RunStatus.PENDING).order_by("created_at", "pk")
        ids = list(pending.values_list("pk", flat=True)[:limit])
        totals = {"succeeded": 0, "failed": 0, "stopped": 0}
        with self.progress(len(ids), "Processing") as progress:
            for start in range(0, len(ids), batch_size):
                batch = ProcessingRun.objects.filter(pk__in=ids[start : start + batch_size]).order_by("pk")
                outcome = process_runs(batch, concurrency=concurrency, on_done=lambda run: progress.advance())
                for key, value in outcome.items():
                    totals[key] += value
        self.stdout.write(
            f"Processed {len(ids)} run(s): {totals['succeeded']} succeeded, {totals['failed']} failed, "
            f"{totals['stopped']} stopped by a person."
        )
        if totals["failed"]:
            raise CommandError(f"{totals['failed']} run(s) failed; see the review queue.", returncode=FAILED)
