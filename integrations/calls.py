"""Which integration a call to an outside system went to, so the executor charges the right circuit.

A handler may use more than one integration: escalate_issue mails the
chain and posts to Slack, schedule_meeting keeps the event in the calendar
and mails the invitation. A Slack outage must open the chat circuit, not
the mail one, and a meeting whose invitation did go out is a success for
mail. So backends make each call inside `calling(capability)`: a failure
leaves it naming its integration (IntegrationError.capability), and an
answer is noted for the executor, which collects them with `noting_answers`.
A handler that did not call an integration (no Slack configured, a notice
already sent) leaves no answer, so that integration's circuit and counts
are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from integrations.errors import IntegrationError

# The integrations that answered a call, while the executor runs a handler; None otherwise.
_answered: ContextVar[set[str] | None] = ContextVar("answered", default=None)


@contextmanager
def calling(capability: str) -> Iterator[None]:
    """Around one call to the integration `capability`: its failure names it, its answer is noted.

    A failure that already names an integration (a call inside another's)
    keeps that name.
    """
    try:
        yield
    except IntegrationError as exc:
        exc.capability = exc.capability or capability
        raise
    answered = _answered.get()
    if answered is not None:
        answered.add(capability)


@contextmanager
def noting_answers(answered: set[str]) -> Iterator[None]:
    """Add to `answered` each integration that answers a call made inside the block."""
    token = _answered.set(answered)
    try:
        yield
    finally:
        _answered.reset(token)
