"""A request id for every request: the caller's X-Request-ID when it is a safe token, else a new one."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.core.signals import request_finished
from django.http import HttpRequest, HttpResponse

from observability import context

HEADER = "X-Request-ID"
# Ids from a proxy or a client are kept so one id follows a request through
# every system; anything else (too long, spaces, control characters that
# could forge log lines) is replaced.
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def request_id_for(request: HttpRequest) -> str:
    """The id the caller sent, when safe, or a new random one."""
    given = request.headers.get(HEADER, "")
    return given if _SAFE.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """Bind the request id for log lines, keep it on `request.request_id`, and answer it in X-Request-ID."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_for(request)
        # Bound until the response is closed, not just until the middleware
        # returns: Django logs "Not Found" and "Internal Server Error" after
        # the whole middleware chain, and those lines need the id most.
        context.request_id.set(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


def forget_request_id(**kwargs) -> None:
    context.request_id.set(None)


request_finished.connect(forget_request_id, dispatch_uid="observability.forget_request_id")
