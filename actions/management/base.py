"""What every command a person runs by hand shares: one exit-code convention, stated in --help, and the progress bar.

Exit codes, the same for every command so scripts can rely on them:

- 0 (DONE): everything asked was done, including "there was nothing to do";
- 1 (FAILED): the work failed, or part of it did; what failed is listed on
  standard error, and running again once the cause is fixed picks it up;
- 2 (CANNOT_START): nothing was done because of how the command was called:
  bad arguments, an input file or id that does not exist or is not valid,
  missing settings or a service that cannot be reached.

argparse already exits 2 on bad arguments. A command raises
`CommandError(..., returncode=FAILED or CANNOT_START)`; Django prints the
message and exits with that code (an unexpected crash exits 1).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from actions.management.progress import Progress

DONE, FAILED, CANNOT_START = 0, 1, 2

# What each code means when a command does not say more precisely.
DEFAULT_EXIT_CODES = {
    DONE: "done",
    FAILED: "failed (the reason is printed)",
    CANNOT_START: "bad arguments, nothing was done",
}


class ManualCommand(BaseCommand):
    """A command for people and scripts: --help ends with its exit codes; long work can show a progress bar."""

    # Code -> what it means for this command, shown in --help; codes left out keep DEFAULT_EXIT_CODES' words.
    exit_codes: dict[int, str] = {}
    # Long work: offer --no-progress and draw a bar on standard error.
    shows_progress = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        meanings = {**DEFAULT_EXIT_CODES, **self.exit_codes}
        codes = "; ".join(f"{code} {meaning}" for code, meaning in sorted(meanings.items()))
        kwargs.setdefault("epilog", f"Exit codes: {codes}.")
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        if self.shows_progress:
            parser.add_argument(
                "--no-progress",
                action="store_true",
                help="Draw no progress bar (on a terminal it redraws one line; elsewhere it prints a line "
                "every tenth of the way).",
            )
        return parser

    def execute(self, *args: Any, **options: Any) -> str | None:
        self._progress_on = not options.get("no_progress", False) and options.get("verbosity", 1) > 0
        return super().execute(*args, **options)

    def progress(self, total: int | None, label: str) -> Progress:
        """A progress bar on standard error, off with --no-progress or --verbosity 0."""
        return Progress(total, label, self.stderr, enabled=getattr(self, "_progress_on", True))
