"""Real worker processes for tests: `manage.py qcluster` on the test database and the configured broker."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection


def test_database_url() -> str:
    """The URL of the database this test run uses, for a subprocess."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or ""
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """One qcluster process group, with its output in a file (a full pipe would block it)."""

    def __init__(self, log: Path, *, lane: str | None = None, workers: int = 1, **env: str) -> None:
        self.log = log
        child_env = {**os.environ, "DATABASE_URL": test_database_url(), "Q_WORKERS": str(workers), **env}
        if lane:
            child_env["Q_CLUSTER_NAME"] = lane
            child_env["Q_URGENT_WORKERS"] = str(workers)
        self._output = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=child_env,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a crash can take all of it down
        )

    def stop(self) -> None:
        """Stop as an operator would: SIGTERM to the main process only (a group signal can hang django-q2)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.crash()
        self._kill_leftovers()
        self._output.close()

    def crash(self) -> None:
        """Die as a machine would: SIGKILL to the whole group, mid-work, with no chance to clean up."""
        self._kill_leftovers()
        self.process.wait(timeout=30)

    def _kill_leftovers(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def wait_for(condition: Callable[[], bool], *, timeout: float = 90, every: float = 0.25, then=None) -> bool:
    """Poll `condition` until true or `timeout`; call `then()` between polls (e.g. the sweeper)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if then is not None:
            then()
        time.sleep(every)
    return condition()
