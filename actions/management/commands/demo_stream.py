"""manage.py demo_stream: demo mail keeps arriving, one message every few seconds, through the real intake."""

from __future__ import annotations

import signal
import threading
from itertools import islice

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import timezone

from actions.demo_mail import MAILBOX, DemoMessage, stream
from actions.intake.store import ingest_message
from actions.management.base import CANNOT_START, DONE, ManualCommand
from actions.models import EmailSource


class Command(ManualCommand):
    help = (
        "Deliver generated demo mail to the demo mailbox, one message every --every seconds, as if it had just "
        "arrived: each goes through the real intake (ingest_message) and, with PROCESS_ON_INTAKE on, a worker "
        "analyses and routes it as it would real mail. Endless unless --count is given; SIGINT or SIGTERM "
        "stops it after the message in hand."
    )
    exit_codes = {DONE: "stopped: --count messages delivered, or asked to stop"}

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--every", type=float, default=5.0, metavar="SECONDS", help="Seconds between messages (default 5)."
        )
        parser.add_argument(
            "--count", type=int, default=None, metavar="N", help="Stop after N messages (default: never)."
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="Seed of the generator, for the same mail every time."
        )

    def handle(self, *args, every: float, count: int | None, seed: int | None, **options) -> None:
        if every <= 0 or (count is not None and count < 1):
            raise CommandError("--every must be above 0 and --count 1 or more.", returncode=CANNOT_START)
        if not settings.PROCESS_ON_INTAKE:
            self.stderr.write("PROCESS_ON_INTAKE is off: the mail waits for `manage.py process_pending`.")
        stopping = threading.Event()
        for name in (signal.SIGINT, signal.SIGTERM):
            signal.signal(name, lambda number, frame: stopping.set())
        delivered = 0
        for index, message in enumerate(islice(stream(seed=seed), count)):
            if stopping.wait(every if index else 0):
                break
            delivered += self.deliver(message)
        self.stdout.write(f"Demo mail stopped after {delivered} message(s).")

    def deliver(self, message: DemoMessage) -> int:
        """Store one message as the intake would; 1 when it is new, 0 when the mailbox already had it."""
        result = ingest_message(message.raw, mailbox=MAILBOX, source=EmailSource.DEMO)
        if not result.created:
            return 0
        email = result.email
        sender = email.from_name or email.from_address
        self.stdout.write(
            f"{timezone.localtime():%H:%M:%S} email #{email.pk} ({message.category}) from {sender}: {email.subject}"
        )
        self.stdout.flush()
        return 1
