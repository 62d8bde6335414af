"""A web API on a loopback port for tests: routes, an expected Authorization header, and failures on demand.

A service subclass adds its routes and error body. Requests that break the
documented shape are answered 400 (or 404, 415) and recorded in `problems`,
which the fixture using the service turns into a failure.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, Any]  # (status, JSON body or None)


class Refusal(Exception):
    """A request the service answers with an error; `problem` when it is also a shape the docs do not allow."""

    def __init__(self, status: int, message: str, *, problem: bool = False) -> None:
        super().__init__(message)
        self.status, self.problem = status, problem


def refuse(message: str, status: int = 400) -> Refusal:
    """A request that breaks the documented shape: answered 400 and recorded as a problem."""
    return Refusal(status, message, problem=True)


class LoopbackService:
    """A web API on a loopback port: routes, an expected Authorization header, and failures on demand."""

    def __init__(self, authorization: str) -> None:
        self.authorization = authorization
        self.problems: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of each request, in order
        self._failures: list[tuple[int, float | None]] = []
        self._lock = threading.Lock()
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Answer]]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                service._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def route(self, method: str, pattern: str, answer: Callable[..., Answer]) -> None:
        self._routes.append((method, re.compile(pattern + "$"), answer))

    def fail_next(self, status: int, *, retry_after: float | None = None) -> None:
        """Answer the next request with this error status (and Retry-After), whatever it asks."""
        self._failures.append((status, retry_after))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def error_body(self, message: str) -> Any:
        raise NotImplementedError

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append((request.command, path))
            try:
                status, body, headers = *self._answer(request, path, query, raw), {}
            except Refusal as refusal:
                if refusal.problem:
                    self.problems.append(f"{request.command} {path}: {refusal}")
                status, body, headers = refusal.status, self.error_body(str(refusal)), {}
            if self._failures:
                status, wait = self._failures.pop(0)
                body, headers = self.error_body(f"Failing as told ({status})."), {}
                if wait is not None:
                    headers["Retry-After"] = str(wait)
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        if data:
            request.send_header("Content-Type", "application/json;charset=UTF-8")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def _answer(self, request: BaseHTTPRequestHandler, path: str, query: dict[str, str], raw: bytes) -> Answer:
        if self._failures:
            return 500, None  # Replaced by the failure asked for; the request changes nothing.
        if request.headers.get("Authorization") != self.authorization:
            raise Refusal(401, "Client must be authenticated to access this resource.")
        body = None
        if request.command in {"POST", "PUT"}:
            if not (request.headers.get("Content-Type") or "").startswith("application/json"):
                raise refuse("the body must be sent as application/json", 415)
            try:
                body = json.loads(raw)
            except ValueError:
                raise refuse("the body is not JSON") from None
        elif raw:
            raise refuse(f"a {request.command} request has no body")
        for method, pattern, answer in self._routes:
            match = pattern.match(path)
            if match and method == request.command:
                return answer(*match.groups(), body=body, query=query)
        raise refuse(f"no such endpoint: {request.command} {path}", 404)


def basic_auth(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
