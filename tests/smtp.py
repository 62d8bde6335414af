"""A real SMTP server on the loopback interface, for tests that check what Mailroom sends as the peer sees it.

Use the `smtp_server` fixture: it starts aiosmtpd on a free port, points
Django's SMTP backend at it, and records every message it accepts.
`smtp_server.refuse_next(451)` makes it answer 451 to the next message
(at DATA, or at RCPT with stage="rcpt"), for retry and dead-letter tests.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One message the server accepted: its envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, content_type: str) -> EmailMessage:
        """The first MIME part of this content type (e.g. "text/plain", "text/calendar")."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part
        raise AssertionError(f"no {content_type} part in {[p.get_content_type() for p in self.message.walk()]}")


@dataclass
class _Refusal:
    code: int
    stage: str
    remaining: int


class LoopbackSMTP:
    """The aiosmtpd handler: accepts and records messages, or refuses the next few when told to."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._refusals: list[_Refusal] = []
        self._lock = threading.Lock()
        self.host = "127.0.0.1"
        self.port = 0

    # --- What tests call ---

    def refuse_next(self, code: int, count: int = 1, *, stage: str = "data") -> None:
        """Answer `code` to the next `count` messages: at DATA, or to every RCPT TO with stage="rcpt"."""
        if stage not in {"data", "rcpt"}:
            raise ValueError("stage is data or rcpt")
        with self._lock:
            self._refusals.append(_Refusal(code, stage, count))

    def with_message_id(self, message_id: str) -> list[Received]:
        return [item for item in self.received if item.message_id == message_id]

    def only(self, message_id: str) -> Received:
        """The one message with this Message-ID; fails if it arrived twice or never."""
        found = self.with_message_id(message_id)
        assert len(found) == 1, f"{message_id} arrived {len(found)} times"
        return found[0]

    def message_id_counts(self) -> Counter[str]:
        """How often each Message-ID arrived: distinct ids are messages, counts above 1 are repeats."""
        return Counter(item.message_id for item in self.received)

    # --- aiosmtpd hooks (run in the server's thread) ---

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        with self._lock:
            refusal = self._refusals[0] if self._refusals else None
            if refusal is not None:
                refusal.remaining -= 1
                if refusal.remaining == 0:
                    self._refusals.pop(0)
        session.refusal = refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        refusal = getattr(session, "refusal", None)
        if refusal is not None and refusal.stage == "rcpt":
            return _reply(refusal.code)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        refusal = getattr(session, "refusal", None)
        if refusal is not None and refusal.stage == "data":
            return _reply(refusal.code)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), message, envelope.content))
        return "250 Message accepted"


def _reply(code: int) -> str:
    status = "4.3.0 Try again later" if 400 <= code < 500 else "5.7.1 Refused"
    return f"{code} {status}"


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A loopback SMTP server that Django's email backend sends to for the test's duration."""
    handler = LoopbackSMTP()
    for attempt in range(5):
        handler.port = _free_port(handler.host)
        controller = Controller(handler, hostname=handler.host, port=handler.port)
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            # Another process (an xdist worker) took the port between probe and bind.
            if attempt == 4:
                raise
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = handler.host
    settings.EMAIL_PORT = handler.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    try:
        yield handler
    finally:
        controller.stop()
