"""Mail out: the Django email backend EMAIL_PROVIDER (or EMAIL_BACKEND) chose, as one integration.

SMTP, the web APIs django-anymail speaks (Postmark, SendGrid, Amazon SES...),
Apple Mail, or the console. The outbox stores each message and hands it to
`MailBackend.send`; whatever the backend raises comes back as one
IntegrationError, permanent or not, through `integration_error`.
"""

from __future__ import annotations

import logging
import smtplib
from typing import Any

from anymail.backends.base import AnymailBaseBackend
from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

from integrations.base import Backend, Health
from integrations.errors import IntegrationError, Unavailable
from integrations.http import retry_after

logger = logging.getLogger(__name__)

_PREFIXES = ("django.core.mail.backends.", "anymail.backends.")
_APPLE = "integrations.apple.AppleMailBackend"
# Backends that send the MIME message Django writes, byte for byte; the others
# (web APIs, Apple Mail) take its parts and build their own.
MIME_WRITERS = {"smtp", "console", "locmem", "filebased", "dummy", "amazon_ses"}
# Django's own backends that keep mail in this process or on this machine.
_NOTHING_OUTSIDE = {"console", "locmem", "filebased", "dummy"}


def provider_name(backend_path: str) -> str:
    """The provider an email backend's class path stands for: smtp, postmark, amazon_ses, apple..."""
    for prefix in _PREFIXES:
        if backend_path.startswith(prefix) and backend_path.endswith(".EmailBackend"):
            return backend_path[len(prefix) : -len(".EmailBackend")]
    return "apple" if backend_path == _APPLE else backend_path


class MailBackend(Backend):
    """Sends messages through the configured Django email backend."""

    capability = "mail"

    def __init__(self, backend_path: str | None = None) -> None:
        self.backend_path = backend_path or settings.EMAIL_BACKEND
        # Which provider this instance serves is a setting, not a subclass.
        self.name = provider_name(self.backend_path)

    @property
    def writes_mime(self) -> bool:
        """Whether the message reaches the peer as Django writes it (so any MIME structure survives)."""
        return self.name in MIME_WRITERS

    def connection(self) -> BaseEmailBackend:
        """A new connection to the provider; Unavailable when its settings are missing or wrong."""
        try:
            return get_connection(self.backend_path, fail_silently=False, timeout=settings.EMAIL_TIMEOUT)
        except (ImproperlyConfigured, ImportError) as exc:
            # Anymail names the missing setting, never its value.
            raise Unavailable(f"The {self.name} mail backend is not configured: {exc}") from exc

    def send(self, email: EmailMessage) -> None:
        """Hand one message to the provider; raise IntegrationError when it refuses or cannot be reached.

        A failure after the provider accepted the message (an SMTP QUIT that
        goes wrong) does not count: sending it again would send it twice.
        """
        connection = self.connection()
        try:
            # Opened here, so send_messages() leaves closing to us.
            connection.open()
            connection.send_messages([email])
        except Exception as exc:
            error = integration_error(exc)
            if error is None or error is exc:
                raise
            raise error from exc
        finally:
            _close(connection)

    def health(self) -> Health:
        """SMTP: log in and NOOP, sending nothing. Web APIs: their settings are there (a call would cost a send)."""
        try:
            connection = self.connection()
        except Unavailable as exc:
            return self.unhealthy(str(exc))
        if isinstance(connection, SmtpBackend):
            return self._smtp_health(connection)
        if isinstance(connection, Backend):  # A backend that knows its own health (Apple Mail).
            return connection.health()
        if self.name in _NOTHING_OUTSIDE:
            return self.healthy("Nothing outside to check: mail stays on this machine.")
        if isinstance(connection, AnymailBaseBackend):
            return self.healthy(f"{self.name} is configured, not probed (a probe would cost a send).")
        return self.healthy(f"{self.name} is configured, not probed.")

    def _smtp_health(self, connection: SmtpBackend) -> Health:
        steps = ["connected"]
        try:
            connection.open()  # Connects, and with settings for them does STARTTLS and AUTH.
            session = connection.connection
            session.ehlo_or_helo_if_needed()
            if connection.use_tls or connection.use_ssl:
                steps.append("TLS")
            if connection.username:
                steps.append("logged in")
            code, _ = session.noop()
        except Exception as exc:
            error = integration_error(exc)
            return self.unhealthy(str(error) if error else f"{type(exc).__name__}: {exc}")
        finally:
            _close(connection)
        where = f"{connection.host}:{connection.port}"
        if code != 250:
            return self.unhealthy(f"{where} answered NOOP with {code}.")
        return self.healthy(f"{where}: {', '.join(steps)}; NOOP answered 250.")


def _close(connection: BaseEmailBackend) -> None:
    """Close, logging (not raising) a failure: the message, if any, was already accepted."""
    session = getattr(connection, "connection", None)
    try:
        connection.close()
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("Closing the mail connection failed: %s", exc)
        if isinstance(session, smtplib.SMTP):
            session.close()  # QUIT failed; Django dropped its reference, not the socket.


def integration_error(exc: BaseException) -> IntegrationError | None:
    """What a mail backend's exception means: permanent or worth retrying. None when it is not the peer's answer."""
    if isinstance(exc, IntegrationError):
        return exc
    if isinstance(exc, smtplib.SMTPResponseException):  # 535 bad login, 421/451 try later, 550 refused...
        reply = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return IntegrationError(f"SMTP {exc.smtp_code}: {reply}", permanent=500 <= exc.smtp_code < 600)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        refused = ", ".join(f"{address} ({code})" for address, (code, _) in exc.recipients.items())
        return IntegrationError(f"Recipients refused: {refused}", permanent=all(500 <= c < 600 for c in codes))
    if isinstance(exc, AnymailRecipientsRefused | AnymailInvalidAddress):
        return IntegrationError(f"The provider refused the recipients: {exc}", permanent=True)
    if isinstance(exc, AnymailAPIError):
        return _api_error(exc)
    if isinstance(exc, AnymailError):
        # Unsupported features, unserialisable content: the same message fails the same way again.
        return IntegrationError(f"The provider cannot send this message: {exc}", permanent=True)
    if isinstance(exc, TimeoutError | smtplib.SMTPException | OSError):
        return IntegrationError(f"Could not reach the mail server: {type(exc).__name__}: {exc}")
    return None


def _api_error(exc: AnymailAPIError) -> IntegrationError:
    status, headers = _answer(exc)
    # Anymail spreads the provider's JSON answer over many lines; one line suits a log.
    summary = " ".join(str(exc).split())[:500]
    if status is None:  # No answer at all: refused connection, timeout.
        return IntegrationError(f"Could not reach the provider: {summary}")
    if status == 429:
        wait = retry_after(headers)
        return IntegrationError(f"The provider asks to slow down (HTTP 429): {summary}", retry_after=wait)
    return IntegrationError(f"The provider answered HTTP {status}: {summary}", permanent=status < 500)


def _answer(exc: AnymailAPIError) -> tuple[int | None, Any]:
    """The HTTP status and headers of the provider's answer, if there was one."""
    response = exc.response
    if isinstance(response, dict):  # boto3 (Amazon SES) hands over its parsed error, not the HTTP response.
        metadata = response.get("ResponseMetadata") or {}
        return metadata.get("HTTPStatusCode"), metadata.get("HTTPHeaders") or {}
    return exc.status_code, getattr(response, "headers", None) or {}


def mail_backend() -> MailBackend:
    """The mail backend EMAIL_PROVIDER (or EMAIL_BACKEND) names."""
    return MailBackend()
