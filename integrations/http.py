"""The one HTTP helper every web-API backend uses: JSON in and out, timeouts, errors as IntegrationError.

There are no retries here: the executor retries whole actions with backoff,
and retrying a POST inside one attempt could create a thing twice.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from integrations.errors import IntegrationError

# Statuses worth trying again: the server is busy, rate-limiting or broken, not refusing.
TRANSIENT_STATUSES = frozenset({408, 429})


class HTTPError(IntegrationError):
    """The server answered with an error status; `status` lets a backend tell a 404 from a 403."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        transient = status in TRANSIENT_STATUSES or status >= 500
        super().__init__(message, permanent=not transient, retry_after=retry_after)
        self.status = status


@dataclass(frozen=True)
class Reply:
    """A successful answer: its status, raw body, and the body read as JSON (None when empty)."""

    status: int
    body: bytes

    @property
    def data(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise IntegrationError(f"The answer (HTTP {self.status}) is not JSON.") from None


def retry_after(headers: Any) -> float | None:
    """The wait a server asks for, in seconds, from Retry-After (seconds or an HTTP date) or retry-after-ms."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def request_json(
    method: str,
    url: str,
    *,
    payload: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
    auth: tuple[str, str] | str | None = None,
) -> Reply:
    """Send `payload` (if any) as JSON and return the Reply. Raise IntegrationError for failures.

    `auth` is a (user, secret) pair for HTTP Basic or a bearer token. 408,
    429 and 5xx are transient (with the server's Retry-After), other 4xx are
    permanent (HTTPError, with the status). Neither the URL's path nor the
    credentials are ever in a message: webhook URLs are secrets.
    """
    sent = {"Accept": "application/json", **(headers or {})}
    if payload is not None:
        sent["Content-Type"] = "application/json; charset=utf-8"
    if isinstance(auth, tuple):
        sent["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    elif auth:
        sent["Authorization"] = f"Bearer {auth}"
    request = urllib.request.Request(  # noqa: S310 - the URL comes from settings, scheme checked below
        url,
        data=None if payload is None else json.dumps(payload).encode(),
        headers=sent,
        method=method,
    )
    if request.type not in {"http", "https"}:
        raise IntegrationError(f"Only http and https URLs are supported, not {request.type}.", permanent=True)
    if timeout is None:
        timeout = settings.INTEGRATION_TIMEOUT_SECONDS
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return Reply(response.status, response.read())
    except urllib.error.HTTPError as exc:
        raise HTTPError(
            f"HTTP {exc.code} from {request.host}: {_said(exc.read())}",
            status=exc.code,
            retry_after=retry_after(exc.headers),
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise IntegrationError(f"Could not reach {request.host}: {reason}") from None


def post_json(
    url: str, payload: Any, *, headers: dict[str, str] | None = None, timeout: float | None = None
) -> tuple[int, bytes]:
    """POST `payload` as JSON; return (status, body). Raise IntegrationError for failures, as request_json."""
    reply = request_json("POST", url, payload=payload, headers=headers, timeout=timeout)
    return reply.status, reply.body


def _said(body: bytes) -> str:
    """What an error body says, in at most 300 characters: the messages of a JSON error, else the text."""
    text = body[:2000].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300]
    messages = []
    if isinstance(data, dict):
        # Jira: {"errorMessages": [...], "errors": {field: message}}; Asana: {"errors": [{"message": ...}]}.
        messages += [str(m) for m in data.get("errorMessages") or []]
        errors = data.get("errors")
        if isinstance(errors, dict):
            messages += [f"{field}: {message}" for field, message in errors.items()]
        elif isinstance(errors, list):
            messages += [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
        if isinstance(data.get("message"), str):
            messages.append(data["message"])
    return ("; ".join(messages) or text)[:300]
