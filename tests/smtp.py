"""A real SMTP server on the loopback interface, for tests that check what Mailroom sends as the peer sees it.

Use the `smtp_server` fixture: it starts aiosmtpd on a free port, points
Django's SMTP backend at it, and records every message it accepts.
`smtp_server.refuse_next(451)` makes it answer 451 to the next message
(at DATA, or at RCPT with stage="rcpt"), for retry and dead-letter tests.

`smtp_tls_server` is the same server as a mail provider runs it: STARTTLS
with a self-signed certificate that the test trusts (through SSL_CERT_FILE,
so Django verifies it as it would a real one), and AUTH only over TLS, for
the user and password in `SMTP_USER` and `SMTP_PASSWORD`.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import ssl
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.processes import LOOPBACK, free_port

SMTP_USER = "mailroom@acme.example"
SMTP_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Received:
    """One message the server accepted: its envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    # Whether the session had switched to TLS, and who had logged in, when the message came.
    tls: bool = False
    login: str | None = None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, content_type: str) -> EmailMessage:
        """The first MIME part of this content type (e.g. "text/plain", "text/calendar")."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return part
        raise AssertionError(f"no {content_type} part in {[p.get_content_type() for p in self.message.walk()]}")


@dataclass(frozen=True)
class Login:
    """One AUTH attempt: who, whether the password was right, and whether the session was encrypted."""

    user: str
    password_ok: bool
    tls: bool


@dataclass
class _Refusal:
    code: int
    stage: str
    remaining: int


class LoopbackSMTP:
    """The aiosmtpd handler: accepts and records messages, or refuses the next few when told to."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.logins: list[Login] = []
        self._refusals: list[_Refusal] = []
        self._lock = threading.Lock()
        self.host = LOOPBACK
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
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        received = Received(
            envelope.mail_from, tuple(envelope.rcpt_tos), message, envelope.content, session.ssl is not None, login
        )
        with self._lock:
            self.received.append(received)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        """aiosmtpd's authenticator: SMTP_USER with SMTP_PASSWORD, and nobody else."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        password_ok = user == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
        with self._lock:
            self.logins.append(Login(user, password_ok, session.ssl is not None))
        # handled=False: aiosmtpd answers a failed login with 535 itself.
        return AuthResult(success=password_ok, handled=False, auth_data=auth_data if password_ok else None)


def _reply(code: int) -> str:
    status = "4.3.0 Try again later" if 400 <= code < 500 else "5.7.1 Refused"
    return f"{code} {status}"


def start_server(handler: LoopbackSMTP, **smtp_options) -> Controller:
    """Start aiosmtpd with `handler` on a free loopback port (also used by the benchmarks)."""
    for attempt in range(5):
        handler.port = free_port()
        controller = Controller(handler, hostname=handler.host, port=handler.port, **smtp_options)
        try:
            controller.start()
            return controller
        except (OSError, RuntimeError):
            # Another process (an xdist worker) took the port between probe and bind.
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def _point_django_at(settings, handler: LoopbackSMTP, *, user: str = "", password: str = "", tls: bool = False):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = handler.host
    settings.EMAIL_PORT = handler.port
    settings.EMAIL_HOST_USER = user
    settings.EMAIL_HOST_PASSWORD = password
    settings.EMAIL_USE_TLS = tls
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10


@pytest.fixture
def smtp_server(settings):
    """A loopback SMTP server that Django's email backend sends to for the test's duration."""
    handler = LoopbackSMTP()
    controller = start_server(handler)
    _point_django_at(settings, handler)
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.fixture
def smtp_tls_server(settings, monkeypatch, smtp_certificate):
    """A loopback SMTP server that wants STARTTLS, then AUTH as SMTP_USER; Django is set to do both."""
    cert_file, key_file = smtp_certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    handler = LoopbackSMTP()
    controller = start_server(
        handler,
        tls_context=context,
        require_starttls=True,
        auth_require_tls=True,
        auth_required=True,
        authenticator=handler.authenticate,
    )
    # Django's SMTP backend verifies the server with the default trust store, which this replaces.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    _point_django_at(settings, handler, user=SMTP_USER, password=SMTP_PASSWORD, tls=True)
    try:
        yield handler
    finally:
        controller.stop()
