"""The ids a log line carries: the request being served and the action being run, bound with contextvars.

Context variables follow the code that set them through threads started with
a copied context and through asgiref's sync/async bridges, so one request's
id never shows on another request's lines.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar

logger = logging.getLogger("mailroom.actions")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
action_id: ContextVar[int | None] = ContextVar("action_id", default=None)

T = TypeVar("T")


@contextlib.contextmanager
def bound(var: ContextVar[T], value: T) -> Iterator[None]:
    """Set `var` for the duration of the block, then restore what it was."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)


def with_action_id(run: Callable[[int], str]) -> Callable[[int], str]:
    """Run an action's task with its id bound to every log line, and log what happened and how long it took."""

    @functools.wraps(run)
    def wrapper(pk: int) -> str:
        with bound(action_id, pk):
            started = time.monotonic()
            outcome = run(pk)
            logger.info(
                "Action %s: %s", pk, outcome, extra={"outcome": outcome, "duration": time.monotonic() - started}
            )
            return outcome

    return wrapper
