"""A loopback server speaking the OpenAI Chat Completions API, for tests of the openai analysis backend.

Use the `openai_server` fixture (and `openai_settings` to point Mailroom at
it). The server checks each request as the real service would (a bearer
key, a JSON body with model and messages, a well-formed response_format)
and records it; tests say what it answers:

    openai_server.queue(completion(answer(category="billing")), api_error(503))
    openai_server.respond_with(lambda request: completion(answer(summary=email_in(request)["subject"])))

Queued replies answer the next requests in order; when the queue is empty
the default reply (respond_with, initially a plain "other" answer) does.
`Reply(delay=...)` holds the answer back (timeouts, concurrency),
`hang_up()` closes the connection without a word, `Reply(truncate=True)`
cuts the body short. `max_in_flight` is the most requests handled at once.

A suite gets the fixtures by listing "tests.openai_server" in pytest_plugins
(tests/conftest.py), or by importing them into its module.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from integrations.llm.prompt import EMAIL_END, EMAIL_START

API_KEY = "sk-test-loopback"
# What the service names in its answers: the dated snapshot behind the alias asked for.
MODEL_SNAPSHOT = "gpt-4o-mini-2024-07-18"
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_SCHEMA_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


@dataclass
class Reply:
    """One answer of the server: a status, a body (dict as JSON, str or bytes as is), headers, and how to send it."""

    status: int = 200
    body: dict[str, Any] | str | bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering
    hang_up: bool = False  # close the connection without answering
    truncate: bool = False  # announce the whole body, send half of it, close

    def payload(self) -> bytes:
        if isinstance(self.body, dict):
            return json.dumps(self.body).encode()
        return self.body.encode() if isinstance(self.body, str) else self.body


Responder = Reply | Callable[[dict[str, Any]], Reply]


def answer(**fields: Any) -> dict[str, Any]:
    """An analysis as the model would write it: a plain "other" email with no actions, unless told otherwise."""
    return {
        "category": "other",
        "priority": "normal",
        "summary": "A question from a customer.",
        "draft_reply": "",
        "actions": [],
        **fields,
    }


def email_in(request: dict[str, Any]) -> dict[str, Any]:
    """The email document a recorded request carries between its markers in the user message (decoded JSON)."""
    user = next(message["content"] for message in request["messages"] if message["role"] == "user")
    start, end = user.index(EMAIL_START) + len(EMAIL_START), user.index(EMAIL_END)
    return json.loads(user[start:end])


def completion(
    content: Any,
    *,
    model: str = MODEL_SNAPSHOT,
    prompt_tokens: int = 1200,
    completion_tokens: int = 300,
    finish_reason: str = "stop",
    refusal: str | None = None,
    delay: float = 0.0,
) -> Reply:
    """A 200 chat completion whose message is `content` (a str or None as is, else its JSON text), as documented."""
    text = content if content is None or isinstance(content, str) else json.dumps(content)
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "service_tier": "default",
        "system_fingerprint": "fp_loopback",
    }
    return Reply(body=body, headers={"x-request-id": f"req_{uuid.uuid4().hex}"}, delay=delay)


def refusal(text: str = "I'm sorry, I can't help with that.") -> Reply:
    """A completion in which the model refuses: no content, a refusal message."""
    return completion(None, refusal=text)


def api_error(
    status: int,
    message: str = "",
    *,
    retry_after: str | None = None,
    type: str | None = None,
    code: str | None = None,
    delay: float = 0.0,
) -> Reply:
    """An error answer in the service's format: {"error": {message, type, param, code}}, with Retry-After if given."""
    default_type = {401: "invalid_request_error", 429: "requests", 400: "invalid_request_error"}
    body = {
        "error": {
            "message": message or f"The loopback server answers {status}.",
            "type": type or default_type.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Reply(status=status, body=body, headers=headers, delay=delay)


def hang_up(delay: float = 0.0) -> Reply:
    """Close the connection without answering (the request reached the server)."""
    return Reply(hang_up=True, delay=delay)


class LoopbackOpenAI:
    """The server's state: what to answer, what was asked, and how many requests ran at once."""

    def __init__(self) -> None:
        # The key requests must carry; None accepts any (a local server that checks none).
        self.api_key: str | None = API_KEY
        self.base_url = ""
        # The JSON body of every request that parsed, in arrival order (rejected ones too).
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._queue: list[Responder] = []
        self._default: Responder = completion(answer())
        self._lock = threading.Lock()
        self._closing = threading.Event()

    # --- What tests call ---

    def queue(self, *replies: Responder) -> None:
        """Answer the next requests with these, in order, before falling back to the default."""
        with self._lock:
            self._queue.extend(replies)

    def respond_with(self, reply: Responder) -> None:
        """Answer every request the queue does not with this reply (or the reply this callable makes)."""
        with self._lock:
            self._default = reply

    @property
    def last(self) -> dict[str, Any]:
        """The body of the latest request."""
        assert self.requests, "the server received no request"
        return self.requests[-1]

    # --- What the request handler calls (in the server's threads) ---

    def _reply_to(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            responder = self._queue.pop(0) if self._queue else self._default
        return responder(request) if callable(responder) else responder

    def _record(self, request: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append(request)
            self.headers.append(headers)

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


def request_problem(request: Any) -> str:
    """Why the service would refuse this request body with a 400, or ''."""
    if not isinstance(request, dict):
        return "The request body must be a JSON object."
    if not isinstance(request.get("model"), str) or not request["model"]:
        return "You must provide a model parameter."
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' is a required property and must be a non-empty array."
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            return f"Invalid value for 'messages[{index}].role'."
        if not isinstance(message.get("content"), str | list):
            return f"Invalid type for 'messages[{index}].content': expected a string or an array."
    temperature = request.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        return "Invalid 'temperature': expected a number between 0 and 2."
    return _response_format_problem(request.get("response_format"))


def _response_format_problem(response_format: Any) -> str:
    if response_format is None:
        return ""
    if not isinstance(response_format, dict) or response_format.get("type") not in {
        "text",
        "json_object",
        "json_schema",
    }:
        return "Invalid 'response_format.type': expected one of text, json_object, json_schema."
    if response_format["type"] != "json_schema":
        return ""
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict):
        return "Missing required parameter: 'response_format.json_schema'."
    if not isinstance(spec.get("name"), str) or not _SCHEMA_NAME.fullmatch(spec["name"]):
        return "Invalid 'response_format.json_schema.name': use a-z, A-Z, 0-9, _ and -, at most 64."
    schema = spec.get("schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        return "Invalid schema for response_format 'json_schema': the root must be an object schema."
    if not isinstance(spec.get("strict", False), bool | None):
        return "Invalid 'response_format.json_schema.strict': expected a boolean."
    return ""


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # A client that stops talking must not keep a server thread (and teardown) waiting.
    timeout = 10

    def do_POST(self) -> None:
        state = self.server.state
        state._enter()
        self._counted = True
        try:
            self._answer(state)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): nothing left to say
        finally:
            self._release()

    def _release(self) -> None:
        # Out of flight once the answer is decided, before it is written: the client may send its next
        # request the moment it has read this answer, and must not find this one still counted.
        if getattr(self, "_counted", False):
            self._counted = False
            self.server.state._leave()

    def do_GET(self) -> None:
        self._send(api_error(404, f"Invalid URL (GET {self.path})", type="invalid_request_error"))

    def _answer(self, state: LoopbackOpenAI) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            request = json.loads(raw)
        except ValueError:
            self._send(
                api_error(400, "We could not parse the JSON body of your request.", type="invalid_request_error")
            )
            return
        state._record(request, {key.lower(): value for key, value in self.headers.items()})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(api_error(404, f"Invalid URL (POST {self.path})", type="invalid_request_error"))
            return
        authorization = self.headers.get("Authorization", "")
        if not authorization.startswith("Bearer "):
            message = "You didn't provide an API key. You need to provide your API key in an Authorization header."
            self._send(api_error(401, message))
            return
        if state.api_key is not None and authorization.removeprefix("Bearer ") != state.api_key:
            self._send(api_error(401, "Incorrect API key provided.", code="invalid_api_key"))
            return
        problem = request_problem(request)
        if problem:
            self._send(api_error(400, problem, type="invalid_request_error"))
            return
        self._send(state._reply_to(request))

    def _send(self, reply: Reply) -> None:
        if reply.delay and self.server.state._closing.wait(reply.delay):
            return  # the test is over
        self._release()
        if reply.hang_up:
            self.close_connection = True
            return
        payload = reply.payload()
        self.send_response(reply.status)
        content_type = "application/json" if isinstance(reply.body, dict) else "text/plain; charset=utf-8"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2] if reply.truncate else payload)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The socket's default backlog of 5 drops connections beyond it when a batch connects at once,
    # and a dropped SYN costs the client a second: the model would look slow where it is not.
    request_queue_size = 128

    def __init__(self, state: LoopbackOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextlib.contextmanager
def serving(state: LoopbackOpenAI | None = None) -> Iterator[LoopbackOpenAI]:
    """Run a loopback Chat Completions server on a thread until the block ends (the fixture's, and the benchmarks')."""
    state = state or LoopbackOpenAI()
    server = _Server(state)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state._closing.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def openai_server() -> Iterator[LoopbackOpenAI]:
    """A loopback Chat Completions server for the test's duration; its base_url ends in /v1 like the real one."""
    with serving() as state:
        yield state


@pytest.fixture
def openai_settings(settings, openai_server: LoopbackOpenAI) -> LoopbackOpenAI:
    """Point Mailroom's openai backend at the loopback server, with short timeouts and no SDK retries."""
    settings.ANALYSIS_BACKEND = "openai"
    settings.OPENAI_BASE_URL = openai_server.base_url
    settings.OPENAI_API_KEY = openai_server.api_key
    settings.OPENAI_MODEL = "gpt-4o-mini"
    settings.OPENAI_TIMEOUT_SECONDS = 1
    # The SDK's own retries sleep with backoff; tests that want one set this to 1.
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_INPUT_PRICE_PER_MTOK = Decimal(0)
    settings.OPENAI_OUTPUT_PRICE_PER_MTOK = Decimal(0)
    return openai_server
