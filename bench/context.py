"""What every measurement gets: the sizes, a work directory, the database, a loopback SMTP server and workers."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.test.utils import override_settings
from django_q.brokers import get_broker

from bench.sizes import Sizes
from tests.processes import Worker, wait_for
from tests.smtp import LoopbackSMTP, start_server

# What every benchmark worker runs with: no send delay (it is a wait, not
# work), mail allowed to the generated recipients, rate limits out of the
# way, and every success kept so bare tasks can be counted the same way.
WORKER_ENV = {
    "SEND_DELAY_SECONDS": "0",
    "ALLOWED_RECIPIENT_DOMAINS": "*",
    "DOMAIN_RATE_LIMIT_PER_HOUR": "1000000",
    "Q_SAVE_LIMIT": "0",
    "LOG_LEVEL": "WARNING",
}
# The same, for the run's own process where it queues and decides actions:
# queue_action reads the send delay where it is called, not in the worker.
QUEUEING_SETTINGS = {
    "SEND_DELAY_SECONDS": 0,
    "ALLOWED_RECIPIENT_DOMAINS": ["*"],
    "DOMAIN_RATE_LIMIT_PER_HOUR": 1_000_000,
}


@dataclass
class Bench:
    config: str  # "sqlite" or "postgresql"
    sizes: Sizes
    workdir: Path
    database_url: str
    # Figures one measurement leaves for a later one (figure 7 compares with figure 1).
    notes: dict[str, float] = field(default_factory=dict)
    _smtp: LoopbackSMTP | None = field(default=None, repr=False)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack, repr=False)

    def say(self, message: str) -> None:
        """Progress, on stderr so the table on stdout stays clean."""
        print(f"[{self.config} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    @property
    def smtp(self) -> LoopbackSMTP:
        """One aiosmtpd server on loopback for the whole run; workers deliver the outbox to it."""
        if self._smtp is None:
            handler = LoopbackSMTP()
            controller = start_server(handler)
            self._stack.callback(controller.stop)
            self._smtp = handler
        return self._smtp

    def worker_env(self, **env: str) -> dict[str, str]:
        smtp = self.smtp
        return {
            **WORKER_ENV,
            "EMAIL_PROVIDER": "smtp",
            "EMAIL_HOST": smtp.host,
            "EMAIL_PORT": str(smtp.port),
            **env,
        }

    @contextlib.contextmanager
    def worker(self, *, lane: str | None = None, workers: int | None = None, **env: str) -> Iterator[Worker]:
        """A real `manage.py qcluster` on this run's database and broker, stopped (SIGTERM) afterwards."""
        log = self.workdir / f"worker-{lane or 'main'}-{time.monotonic_ns()}.log"
        process = Worker(
            log,
            lane=lane,
            workers=workers or self.sizes.workers,
            database_url=self.database_url,
            **self.worker_env(**env),
        )
        try:
            yield process
        finally:
            process.stop()

    @contextlib.contextmanager
    def queueing_like_workers(self) -> Iterator[None]:
        """This process queues and decides actions with the workers' settings (no send delay, no domain limits)."""
        with override_settings(**QUEUEING_SETTINGS):
            yield

    def purge_queues(self) -> None:
        for lane in (None, settings.URGENT_LANE):
            get_broker(lane).purge_queue()

    def wait(self, condition, *, timeout: float, what: str, every: float = 0.05) -> None:
        """Wait for `condition`, or fail the measurement naming what did not happen."""
        if not wait_for(condition, timeout=timeout, every=every):
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")

    def close(self) -> None:
        self._stack.close()
