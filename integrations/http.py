"""The one HTTP helper every web-API backend uses: JSON in and out, timeouts, errors as IntegrationError."""

from __future__ import annotations

import email.utils
import json
import time
import urllib.error
import urllib.request
from typing import Any

from integrations.errors import IntegrationError

DEFAULT_TIMEOUT = 10


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


def post_json(
    url: str, payload: Any, *, headers: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
) -> tuple[int, bytes]:
    """POST `payload` as JSON; return (status, body). Raise IntegrationError for failures.

    429 and 5xx are transient (with the server's Retry-After), other 4xx are
    permanent. The URL is never in the message: webhook URLs are secrets.
    """
    request = urllib.request.Request(  # noqa: S310 - the URL comes from settings, scheme checked below
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        method="POST",
    )
    if request.type not in {"http", "https"}:
        raise IntegrationError(f"Only http and https URLs are supported, not {request.type}.", permanent=True)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()[:300].decode("utf-8", "replace")
        transient = exc.code == 429 or exc.code >= 500
        raise IntegrationError(
            f"HTTP {exc.code} from {request.host}: {body}",
            permanent=not transient,
            retry_after=retry_after(exc.headers),
        ) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise IntegrationError(f"Could not reach {request.host}: {reason}") from None
