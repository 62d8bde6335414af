"""A loopback server speaking Slack's Web API (chat.postMessage, auth.test) and an incoming webhook.

    with serve_slack() as slack:
        settings.SLACK_API_URL, settings.SLACK_BOT_TOKEN = slack.api_url, TOKEN
        ...
        (post,) = slack.posts()

It checks each request as Slack does: POST, a bearer token (or a `token`
form field) on the Web API, a JSON or form-encoded body, a known channel,
blocks within Block Kit's limits; and it answers as Slack does: HTTP 200
with {"ok": true, ...} or {"ok": false, "error": ...} on the Web API, "ok"
or an HTTP error with a plain-text code on the webhook. Everything received
is recorded. `queue()` scripts the next answers (429 with Retry-After, 500...),
after the request is recorded; `Reply(hang_up=True)` closes the connection unanswered.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-1111-2222-loopbacksecret"
TEAM, BOT_USER = "Acme", "mailroom"
CHANNELS = {"C0MAILROOM": "mailroom"}  # id -> name
CHANNEL = "C0MAILROOM"
WEBHOOK_PATH = "/services/T0ACME/B0MAILROOM/webhooksecret"
API_METHODS = {"chat.postMessage", "auth.test"}
# What auth.test answers for the bot's token.
AUTH_TEST = {
    "ok": True,
    "url": "https://acme.slack.com/",
    "team": TEAM,
    "user": BOT_USER,
    "team_id": "T0ACME",
    "user_id": "U0MAILROOM",
    "bot_id": "B0MAILROOM",
}


@dataclass
class Reply:
    """One answer: a status, a body (dict as JSON, str as text) and headers; or hanging up without a word."""

    status: int = 200
    body: dict[str, Any] | str = ""
    headers: dict[str, str] = field(default_factory=dict)
    hang_up: bool = False


@dataclass
class Received:
    """One request as the server read it: `method` is the API method or "webhook"; `body` is decoded."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


def api_error(error: str, status: int = 200) -> Reply:
    """A Web API refusal: Slack says ok:false with an error code, with HTTP 200."""
    return Reply(status, {"ok": False, "error": error})


def rate_limited(seconds: int = 30, *, webhook: bool = False) -> Reply:
    """Slack's 429: "ratelimited" on the Web API, "rate_limited" on webhooks, with Retry-After."""
    body: dict[str, Any] | str = "rate_limited" if webhook else {"ok": False, "error": "ratelimited"}
    return Reply(429, body, {"Retry-After": str(seconds)})


def server_error(status: int = 500) -> Reply:
    return Reply(status, "<html><body>Internal Server Error</body></html>", {"Content-Type": "text/html"})


def block_errors(blocks: Any) -> list[str]:
    """What Slack would find wrong with these blocks (limits from the Block Kit reference); [] when valid."""
    if not isinstance(blocks, list) or len(blocks) > 50:
        return ["blocks must be a list of at most 50"]
    errors = []
    for n, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "header":
            errors += _text_errors(block.get("text"), f"[{n}].text", 150, kinds={"plain_text"})
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"[{n}] needs text or fields")
            if "text" in block:
                errors += _text_errors(block["text"], f"[{n}].text", 3000)
            shown = block.get("fields", [])
            if len(shown) > 10:
                errors.append(f"[{n}].fields has more than 10")
            for i, one in enumerate(shown):
                errors += _text_errors(one, f"[{n}].fields[{i}]", 2000)
        elif kind == "actions":
            for i, element in enumerate(block.get("elements", [])):
                errors += _text_errors(element.get("text"), f"[{n}].elements[{i}].text", 75, kinds={"plain_text"})
                if not 0 < len(element.get("url", "")) <= 3000:
                    errors.append(f"[{n}].elements[{i}].url must be 1 to 3000 characters")
        else:
            errors.append(f"[{n}] has unknown type {kind!r}")
    return errors


def _text_errors(text: Any, where: str, limit: int, kinds: set[str] = frozenset({"plain_text", "mrkdwn"})) -> list[str]:
    if not isinstance(text, dict) or text.get("type") not in kinds:
        return [f"{where} must be a text object of type {' or '.join(sorted(kinds))}"]
    if not 0 < len(text.get("text", "")) <= limit:
        return [f"{where} must be 1 to {limit} characters"]
    return []


class SlackServer:
    """The server's state: what it received, the answers queued for the next requests, its addresses."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self._ts = itertools.count(100)
        self._lock = threading.Lock()
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.http.slack = self  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these, in order, whatever they ask."""
        self.replies.extend(replies)

    def posts(self) -> list[dict[str, Any]]:
        """The bodies of the messages posted (chat.postMessage or webhook), in order."""
        return [one.body for one in self.received if one.method in {"chat.postMessage", "webhook"}]

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        """Record the request and answer it as Slack would (or with the next queued reply)."""
        webhook = not path.startswith("/api/")
        body = _decode(headers.get("content-type", ""), raw)
        with self._lock:
            self.received.append(Received("webhook" if webhook else path[5:], path, headers, body or {}))
            if self.replies:
                return self.replies.popleft()
        return self._webhook(path, body) if webhook else self._api(path[5:], headers, body)

    def _api(self, method: str, headers: dict[str, str], body: dict[str, Any] | None) -> Reply:
        if method not in API_METHODS:
            return Reply(404, {"ok": False, "error": "unknown_method"})
        if body is None:
            return api_error("invalid_form_data")
        bearer = headers.get("authorization", "")
        # A form may carry the token as a field; a JSON body may not (Slack reads it from the header only).
        form = headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        token = (
            bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else body.get("token", "") if form else ""
        )
        if not token:
            return api_error("not_authed")
        if token != TOKEN:
            return api_error("invalid_auth")
        if method == "auth.test":
            return Reply(200, AUTH_TEST)
        channel = _channel_id(str(body.get("channel", "")))
        if channel is None:
            return api_error("channel_not_found")
        if not body.get("text") and not body.get("blocks"):
            return api_error("no_text")
        if errors := block_errors(body.get("blocks", [])):
            return Reply(200, {"ok": False, "error": "invalid_blocks", "errors": errors})
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"type": "message", "text": body.get("text", ""), "blocks": body.get("blocks", []), "ts": ts}
        return Reply(200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    def _webhook(self, path: str, body: dict[str, Any] | None) -> Reply:
        if path != WEBHOOK_PATH:
            return Reply(404, "no_service")
        if body is None:
            return Reply(400, "invalid_payload")
        if not body.get("text") and not body.get("blocks"):
            return Reply(400, "no_text")
        if block_errors(body.get("blocks", [])):
            return Reply(400, "invalid_blocks")
        return Reply(200, "ok")


def _decode(content_type: str, raw: bytes) -> dict[str, Any] | None:
    """The body as a dict: JSON, or a form whose `blocks` field holds JSON. None when it cannot be read."""
    if not raw:
        return {}
    kind = content_type.split(";")[0].strip()
    try:
        if kind == "application/json":
            body = json.loads(raw)
            return body if isinstance(body, dict) else None
        if kind == "application/x-www-form-urlencoded":
            form = {name: values[-1] for name, values in parse_qs(raw.decode()).items()}
            if "blocks" in form:
                form["blocks"] = json.loads(form["blocks"])
            return form
    except (ValueError, UnicodeDecodeError):
        return None
    return None


def _channel_id(channel: str) -> str | None:
    """The ID of a channel named by ID, by name or by #name; None for a channel the bot cannot see."""
    if channel in CHANNELS:
        return channel
    name = channel.removeprefix("#")
    return next((id_ for id_, known in CHANNELS.items() if known == name), None)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.server.slack.answer(self.path, headers, raw))  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        self._send(Reply(405, "method_not_allowed"))

    def _send(self, reply: Reply) -> None:
        if reply.hang_up:
            self.close_connection = True
            return
        if isinstance(reply.body, dict):
            payload, kind = json.dumps(reply.body).encode(), "application/json; charset=utf-8"
        else:
            payload, kind = reply.body.encode(), "text/plain; charset=utf-8"
        self.send_response(reply.status)
        for name, value in {"Content-Type": kind, **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serve_slack() -> Iterator[SlackServer]:
    """A running SlackServer on a free loopback port, stopped afterwards."""
    server = SlackServer()
    thread = threading.Thread(target=server.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.http.shutdown()
        server.http.server_close()


if __name__ == "__main__":  # python -m tests.slack_server: a loopback Slack to point a local Mailroom at
    import time

    with serve_slack() as slack:
        print(f"export SLACK_API_URL={slack.api_url} SLACK_BOT_TOKEN={TOKEN} SLACK_CHANNEL={CHANNEL}")
        print(f"# or: export SLACK_WEBHOOK_URL={slack.webhook_url}", flush=True)
        shown = 0
        while True:
            time.sleep(0.5)
            for request in slack.received[shown:]:
                print(request.method, json.dumps(request.body, indent=2, ensure_ascii=False), flush=True)
            shown = len(slack.received)
