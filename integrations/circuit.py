"""Circuit breakers, one per integration, shared by all workers through the database.

After CIRCUIT_FAILURE_THRESHOLD transient failures in a row an integration's
circuit opens for CIRCUIT_COOLDOWN_SECONDS: actions that need it wait instead
of spending their retries. When the cool-down is over, the integration's
health check is asked first: still down, the circuit stays open for another
cool-down without an action spending an attempt to learn that; answering, the
circuit is half open: the next calls go through; a success closes it, a
failure opens it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from integrations import registry
from integrations.models import CallOutcome, Circuit, CircuitState, IntegrationCalls

# Handlers that talk to no outside system need no breaker.
UNGUARDED = {"local"}


def blocked_until(name: str) -> datetime | None:
    """When the integration may be tried again, or None if it may be tried now."""
    if name in UNGUARDED:
        return None
    state = Circuit.objects.filter(name=name).values_list("state", "opened_until").first()
    if state is None or state[0] != CircuitState.OPEN:
        return None
    now = timezone.now()
    if state[1] and state[1] > now:
        return state[1]
    health = registry.check(name)
    if not health.ok:
        until = now + timedelta(seconds=settings.CIRCUIT_COOLDOWN_SECONDS)
        Circuit.objects.filter(name=name, state=CircuitState.OPEN).update(
            opened_until=until, last_error=f"Health check: {health.detail}"[:2000]
        )
        return until
    # The rest is over and the system answers: let calls through to find out whether it works.
    Circuit.objects.filter(name=name, state=CircuitState.OPEN).update(state=CircuitState.HALF_OPEN)
    return None


def record_failure(name: str, error: str) -> None:
    if name in UNGUARDED:
        return
    with transaction.atomic():
        count_call(name, CallOutcome.FAILURE)
        Circuit.objects.get_or_create(name=name)
        Circuit.objects.filter(name=name).update(failures=F("failures") + 1, last_error=error[:2000])
        circuit = Circuit.objects.select_for_update().get(name=name)
        if circuit.state == CircuitState.HALF_OPEN or circuit.failures >= settings.CIRCUIT_FAILURE_THRESHOLD:
            circuit.state = CircuitState.OPEN
            circuit.opened_until = timezone.now() + timedelta(seconds=settings.CIRCUIT_COOLDOWN_SECONDS)
            circuit.save(update_fields=["state", "opened_until", "changed_at"])


def record_refusal(name: str) -> None:
    """A permanent failure (bad credentials, not found): counted for /metrics, but no sign the system is down."""
    if name not in UNGUARDED:
        count_call(name, CallOutcome.REFUSED)


def record_success(name: str) -> None:
    if name in UNGUARDED:
        return
    count_call(name, CallOutcome.SUCCESS)
    # One UPDATE that matches nothing in the common case (closed, no failures).
    Circuit.objects.exclude(state=CircuitState.CLOSED, failures=0).filter(name=name).update(
        state=CircuitState.CLOSED, failures=0, opened_until=None
    )


def states() -> dict[str, str]:
    """Each known integration's circuit state, for the dashboard and health checks."""
    return dict(Circuit.objects.values_list("name", "state"))


def count_call(name: str, outcome: CallOutcome) -> None:
    """Add one call with `outcome` to the integration's counter (for /metrics), creating it on first use."""
    calls = IntegrationCalls.objects.filter(capability=name, outcome=outcome)
    if calls.update(count=F("count") + 1, last_at=timezone.now()):
        return
    # First call ever: get_or_create survives another worker creating the row at the same moment.
    IntegrationCalls.objects.get_or_create(capability=name, outcome=outcome)
    calls.update(count=F("count") + 1, last_at=timezone.now())
