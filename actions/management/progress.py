"""A progress bar for long management commands, with no dependency.

On a terminal it redraws one line; elsewhere (logs, CI, pipes) it prints a
line every tenth of the way, so logs stay short.
"""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Count done items against a total (or an open count when the total is unknown)."""

    WIDTH = 30

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.total, self.label, self.done = total, label, 0
        # A command's self.stderr is Django's OutputWrapper, which ends every
        # write with a newline; the bar draws its own "\r" and "\n" below it.
        stream = stream or sys.stderr
        self.stream = getattr(stream, "_out", stream)
        self.enabled = enabled
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self._last_tenth = -1

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        if self.live:
            self.stream.write("\r" + self._line())
            self.stream.flush()
            return
        tenth = self.done * 10 // self.total if self.total else self.done // 100
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(self._line() + "\n")

    def finish(self) -> None:
        if self.live and self.done:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self) -> str:
        if not self.total:
            return f"{self.label}: {self.done}"
        filled = self.WIDTH * self.done // self.total
        return f"{self.label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
