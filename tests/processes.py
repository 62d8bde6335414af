"""Real processes for tests: `manage.py qcluster` workers, and servers (Dovecot, Radicale) on loopback ports.

Workers run on the test database and the configured broker. A server is a
`ServerProcess` subclass, run for a fixture's duration with `serving()`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from django.conf import settings
from django.db import connection

LOOPBACK = "127.0.0.1"


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

    def __init__(
        self, log: Path, *, lane: str | None = None, workers: int = 1, database_url: str = "", **env: str
    ) -> None:
        self.log = log
        database_url = database_url or test_database_url()
        child_env = {**os.environ, "DATABASE_URL": database_url, "Q_WORKERS": str(workers), **env}
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


def free_port() -> int:
    """A loopback port nothing listens on now: for a server to start on, or to stand for a server that is down."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class ServerProcess:
    """A server subprocess on a free loopback port, with its config, data and output in a temporary directory.

    A subclass sets `name` and builds the command line for `self.port`; `start`
    runs it until it answers, and `stop` ends it and removes the directory.
    """

    name = "The server"
    start_timeout = 20.0

    def __init__(self, prefix: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._keep_files = False

    def command(self) -> list[str]:
        """The command line that runs the server on `self.port`, its config written for that port."""
        raise NotImplementedError

    def check_answers(self) -> None:
        """Raise OSError unless the server, which accepts connections, also answers; accepting is enough here."""

    def log_files(self) -> list[Path]:
        """Where the server writes: its own output (start-up errors go there), and any log its config names."""
        return [self.root / "output.log"]

    def output(self, lines: int = 40) -> str:
        """The end of each of the server's log files."""
        text = []
        for path in self.log_files():
            if path.exists():
                text += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(text)

    def start(self) -> None:
        """Run the server on a free port until it answers; if it will not, fail saying why and where its logs are."""
        for _attempt in range(5):
            self.port = free_port()
            command = self.command()
            with (self.root / "output.log").open("ab") as output:
                self.process = subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
                )
            settled = wait_for(self._answering_or_gone, timeout=self.start_timeout, every=0.05)
            if settled and self.process.poll() is None:
                return
            code = self.process.poll()
            why = f"did not answer within {self.start_timeout:g} s" if code is None else f"exited with status {code}"
            self._end_process()
            # Another process may have taken the port between probe and bind: try another.
            if "Address already in use" not in self.output():
                break
        self._keep_files = True  # for the logs the message points to
        pytest.fail(
            f"{self.name} did not start on {LOOPBACK}:{self.port}: it {why}. "
            f"Its logs, kept with its config in {self.root}: {', '.join(map(str, self.log_files()))}. "
            f"They end:\n{self.output()}",
            pytrace=False,
        )

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL if it lingers) and remove its directory, unless it failed to start."""
        self._end_process()
        if not self._keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def _answering_or_gone(self) -> bool:
        if self.process.poll() is not None:
            return True
        with contextlib.suppress(OSError):
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                pass
            self.check_answers()
            return True
        return False

    def _end_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


Server = TypeVar("Server", bound=ServerProcess)


def serving(server: Server) -> Iterator[Server]:
    """A fixture's body: start `server`, yield it, and stop it afterwards, also when starting failed."""
    try:
        server.start()
        yield server
    finally:
        server.stop()
