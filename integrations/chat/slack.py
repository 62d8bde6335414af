"""Slack: a bot posting with chat.postMessage (slack-sdk), or an incoming webhook.

The bot needs a token with the chat:write scope and a channel it has been
invited to; the webhook posts to the one channel it was made for. Neither
retries on its own: the executor retries transient errors with backoff and
counts them towards the circuit breaker. Tokens and webhook URLs are secrets:
no message, log line or health detail here holds them.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse

from integrations.base import Health
from integrations.calls import calling
from integrations.chat.base import ChatBackend
from integrations.chat.blocks import ChatNotice
from integrations.errors import IntegrationError
from integrations.http import post_json, retry_after

# Errors Slack answers with ok:false that are worth trying again; every other one
# (invalid_auth, not_authed, channel_not_found, account_inactive, missing_scope,
# invalid_blocks...) needs a person to change something first.
TRANSIENT_ERRORS = {
    "ratelimited",
    "rate_limited",
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
}


class SlackBot(ChatBackend):
    """Posts to SLACK_CHANNEL as the bot whose token is SLACK_BOT_TOKEN."""

    name = "slack"

    def __init__(self, token: str, channel: str, *, api_url: str, timeout: float) -> None:
        self.channel = channel
        # urljoin drops the last segment of a base without its slash: ".../api" + "auth.test" -> "/auth.test".
        base_url = api_url.rstrip("/") + "/"
        # retry_handlers=[]: the SDK would otherwise retry connection errors itself, under the executor's retries.
        self.client = WebClient(token=token, base_url=base_url, timeout=int(timeout), retry_handlers=[])

    def post(self, notice: ChatNotice) -> dict[str, Any]:
        with calling(self.capability), _slack_errors("chat.postMessage"):
            response = self.client.chat_postMessage(channel=self.channel, **notice.payload())
        return self.posted(channel=response.get("channel"), ts=response.get("ts"))

    def health(self) -> Health:
        try:
            with _slack_errors("auth.test"):
                response = self.client.auth_test()
        except IntegrationError as exc:
            return self.unhealthy(str(exc))
        return self.healthy(f"Signed in to {response.get('team')} as {response.get('user')}; posts to {self.channel}.")


class SlackWebhook(ChatBackend):
    """Posts to the channel of the incoming webhook at SLACK_WEBHOOK_URL."""

    name = "slack-webhook"

    def __init__(self, url: str, *, timeout: float) -> None:
        self.url, self.timeout = url, timeout

    def post(self, notice: ChatNotice) -> dict[str, Any]:
        # post_json raises for 4xx (permanent: 403 action_prohibited, 404 no_service, 410 channel_is_archived)
        # and 429/5xx (transient, with Retry-After); the URL is never in its messages.
        with calling(self.capability):
            post_json(self.url, notice.payload(), timeout=self.timeout)
        return self.posted()

    def health(self) -> Health:
        # A webhook has no read-only call: the only probe is a post everyone in the channel would see.
        if urlsplit(self.url).scheme not in {"http", "https"}:
            return self.unhealthy("SLACK_WEBHOOK_URL is not an http or https URL.")
        return self.healthy("Webhook configured, not probed (a test post would show in the channel).")


@contextmanager
def _slack_errors(method: str) -> Iterator[None]:
    """Turn what slack-sdk raises for one Web API call into IntegrationError, permanent or not."""
    try:
        yield
    except SlackApiError as exc:
        raise _refusal(method, exc.response) from None
    except SlackRequestError as exc:
        raise IntegrationError(f"Slack {method} could not be sent: {exc}", permanent=True) from None
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, cut short
        reason = getattr(exc, "reason", None) or exc
        raise IntegrationError(f"Could not reach Slack for {method}: {reason}") from None


def _refusal(method: str, response: SlackResponse) -> IntegrationError:
    """The error for a Slack answer that is not ok: transient for 429, 5xx and Slack's own outages."""
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or "no error given")[:200]
    message = f"Slack refused {method}: {error}"
    if status != 200:
        message += f" (HTTP {status})"
    if error == "missing_scope" and data.get("needed"):
        message += f"; the token needs the {data['needed']} scope"
    if status == 429 or status >= 500 or error in TRANSIENT_ERRORS:
        headers = {name.lower(): value for name, value in (response.headers or {}).items()}
        return IntegrationError(message, retry_after=retry_after(headers))
    return IntegrationError(message, permanent=True)
