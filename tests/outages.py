"""Peers that a test can take down and bring back: the reliability suite's outages.

Each peer goes down as its kind of system does when it fails, and comes back
where Mailroom last knew it:

- the SMTP server (aiosmtpd) stops listening, then listens again on its port;
- Jira and Slack (loopback web APIs) answer every request 503, as a service in
  an incident does, then answer normally again; what they refused is counted,
  not recorded, so what they hold afterwards is what they accepted;
- Radicale and Dovecot (real server processes) are stopped, then started
  again on the same port with their data as it was.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from aiosmtpd.controller import Controller

from tests.loopback import Refusal
from tests.processes import LOOPBACK, ServerProcess, wait_for
from tests.slack_server import Reply, SlackServer, server_error
from tests.smtp import LoopbackSMTP, start_server
from tests.task_fakes import FakeJira


class Peer(Protocol):
    name: str

    def go_down(self) -> None: ...

    def come_back(self) -> None: ...


class SmtpPeer:
    """The loopback SMTP server, stopped and started again on the same port; `handler` keeps what it received."""

    name = "SMTP (aiosmtpd)"

    def __init__(self) -> None:
        self.handler = LoopbackSMTP()
        self._controller: Controller | None = start_server(self.handler)

    def go_down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def come_back(self) -> None:
        self._controller = Controller(self.handler, hostname=self.handler.host, port=self.handler.port)
        self._controller.start()

    def close(self) -> None:
        self.go_down()


class _Switchable:
    """A loopback service that a test takes down and brings back; `refused` counts what it turned away."""

    down = False
    refused = 0

    def go_down(self) -> None:
        self.down = True

    def come_back(self) -> None:
        self.down = False

    def refuses(self) -> bool:
        """While down: count the request, and tell the caller to refuse it."""
        if self.down:
            self.refused += 1
        return self.down


class JiraPeer(_Switchable, FakeJira):
    """The loopback Jira, answering 503 to everything while down."""

    name = "Jira (loopback)"

    def _answer(self, request: Any, path: str, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if self.refuses():
            raise Refusal(503, "Service Unavailable")
        return super()._answer(request, path, query, raw)


class SlackPeer(_Switchable, SlackServer):
    """The loopback Slack, answering 503 to everything while down."""

    name = "Slack (loopback)"

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        if self.refuses():
            return server_error(503)
        return super().answer(path, headers, raw)


def serving_slack() -> Iterator[SlackPeer]:
    """A fixture's body: a SlackPeer on a free loopback port for the test's duration."""
    slack = SlackPeer()
    threading.Thread(target=slack.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield slack
    finally:
        slack.http.shutdown()
        slack.http.server_close()


class ProcessPeer:
    """A server process (Radicale, Dovecot) stopped, then started again on its port with its files as they were."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.name = server.name

    def go_down(self) -> None:
        process = self.server.process
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=15)

    def come_back(self) -> None:
        server = self.server
        with (server.root / "output.log").open("ab") as output:
            server.process = subprocess.Popen(
                server.command(), stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        answering = wait_for(self._answering, timeout=server.start_timeout, every=0.05)
        assert answering, f"{server.name} did not come back on port {server.port}:\n{server.output()}"

    def _answering(self) -> bool:
        with contextlib.suppress(OSError):
            with socket.create_connection((LOOPBACK, self.server.port), timeout=1):
                pass
            self.server.check_answers()
            return True
        return False
