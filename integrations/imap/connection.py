"""The IMAP account and its connection: settings, logging in, and turning the library's errors into IntegrationError."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from integrations.errors import IntegrationError

# Refusals that the same command would meet again: retrying cannot help, a person must.
_PERMANENT_CODES = ("[NONEXISTENT]", "[OVERQUOTA]", "[NOPERM]", "[CANNOT]", "[LIMIT]")


@dataclass(frozen=True)
class ImapSettings:
    """Where and how to read mail; `from_settings()` reads the IMAP_* settings."""

    host: str
    port: int = 993
    ssl: bool = True
    starttls: bool = False
    user: str = ""
    password: str = field(default="", repr=False)  # never in a repr, a log line or an error
    folders: tuple[str, ...] = ("INBOX",)
    mailbox: str = ""  # the mailbox's name in Mailroom: Email.mailbox and MailboxCursor.mailbox
    timeout: float = 30
    batch_size: int = 50

    @classmethod
    def from_settings(cls) -> ImapSettings:
        """The configured IMAP account (host "" when IMAP is off)."""
        return cls(
            host=settings.IMAP_HOST,
            port=settings.IMAP_PORT,
            ssl=settings.IMAP_SSL,
            starttls=settings.IMAP_STARTTLS,
            user=settings.IMAP_USER,
            password=settings.IMAP_PASSWORD,
            folders=tuple(settings.IMAP_FOLDERS),
            mailbox=settings.IMAP_MAILBOX,
            timeout=settings.IMAP_TIMEOUT_SECONDS,
            batch_size=settings.IMAP_BATCH_SIZE,
        )

    @property
    def configured(self) -> bool:
        return bool(self.host)

    @property
    def where(self) -> str:
        return f"IMAP server {self.host}:{self.port}"

    def with_folders(self, folders: list[str] | tuple[str, ...]) -> ImapSettings:
        return replace(self, folders=tuple(folders))

    def scrub(self, text: str) -> str:
        """`text` with the password blanked out, should a server or library ever echo it."""
        return text.replace(self.password, "********") if self.password else text


def connect(cfg: ImapSettings) -> IMAPClient:
    """A logged-in client; IntegrationError (permanent for bad credentials or settings) when that fails."""
    if not cfg.configured:
        raise IntegrationError("IMAP_HOST is not set", permanent=True)
    where = cfg.where
    try:
        client = IMAPClient(cfg.host, port=cfg.port, ssl=cfg.ssl, timeout=cfg.timeout)
    except (OSError, IMAPClientError) as exc:
        raise connection_error(cfg, f"Cannot connect to {where}", exc) from None
    if cfg.starttls and not cfg.ssl:
        try:
            client.starttls()
        except (OSError, IMAPClientAbortError) as exc:
            close(client)
            raise connection_error(cfg, f"Cannot start TLS with {where}", exc) from None
        except IMAPClientError as exc:
            close(client)
            raise IntegrationError(cfg.scrub(f"{where} refused STARTTLS: {text(exc)}"), permanent=True) from None
    try:
        client.login(cfg.user, cfg.password)
    except LoginError as exc:
        close(client)
        raise IntegrationError(
            cfg.scrub(f"{where} refused the login of {cfg.user!r}: {text(exc)}"), permanent=True
        ) from None
    except (OSError, IMAPClientError) as exc:
        close(client)
        raise connection_error(cfg, f"Cannot log in to {where}", exc) from None
    return client


@contextlib.contextmanager
def session(cfg: ImapSettings) -> Iterator[IMAPClient]:
    """A logged-in client for the `with` block, logged out after it; the library's errors as IntegrationError."""
    client = connect(cfg)
    try:
        with talking(cfg, "talking to the server"):
            yield client
    finally:
        close(client)


@contextlib.contextmanager
def talking(cfg: ImapSettings, what: str) -> Iterator[None]:
    """Turn the library's errors while doing `what` into IntegrationError: transient unless the refusal is final."""
    try:
        yield
    except IntegrationError:
        raise
    except (OSError, IMAPClientAbortError) as exc:
        raise connection_error(cfg, f"Lost the connection to {cfg.where} {what}", exc) from None
    except IMAPClientError as exc:
        words = text(exc)
        permanent = any(code in words.upper() for code in _PERMANENT_CODES)
        raise IntegrationError(cfg.scrub(f"{cfg.where} refused {what}: {words}"), permanent=permanent) from None


def health() -> str:
    """Why the configured IMAP account cannot be used, or "" when it can (or IMAP is off)."""
    cfg = ImapSettings.from_settings()
    if not cfg.configured:
        return ""
    try:
        close(connect(cfg))
    except IntegrationError as exc:
        return str(exc)
    return ""


def connection_error(cfg: ImapSettings, what: str, exc: BaseException) -> IntegrationError:
    """An IntegrationError for a failed connection: permanent only when settings, not the network, are wrong."""
    if isinstance(exc, TimeoutError):  # socket.timeout too
        return IntegrationError(f"{what}: no answer within {cfg.timeout:g} s")
    if isinstance(exc, socket.gaierror):
        return IntegrationError(f"{what}: the host name does not resolve ({exc.strerror or exc})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return IntegrationError(
            cfg.scrub(f"{what}: its TLS certificate is not trusted ({exc.verify_message})"), permanent=True
        )
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        return IntegrationError(cfg.scrub(f"{what}: {exc.strerror or exc}"))
    return IntegrationError(cfg.scrub(f"{what}: {text(exc)}"))


def text(exc: BaseException) -> str:
    """The server's words from an imaplib error, without the bytes-literal wrapping."""
    words = str(exc)
    match = re.fullmatch(r"b(['\"])(.*)\1", words)
    return match.group(2) if match else words


def close(client: IMAPClient) -> None:
    """Log out; a dead connection cannot be, so it is just shut."""
    try:
        client.logout()
    except (OSError, IMAPClientError):
        with contextlib.suppress(OSError, IMAPClientError):
            client.shutdown()
