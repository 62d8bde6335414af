"""The configured backend of each capability, and their health, for the circuit breaker and the health view.

Each capability module has a factory that reads settings and returns its
configured backend; this table names them, so the circuit breaker, the
`/health/` view and `check_integrations` ask one place.
"""

from __future__ import annotations

import logging
from importlib import import_module

from integrations.base import Backend, Health

logger = logging.getLogger(__name__)

# capability -> "module:factory". The names are the handlers' `capability`.
FACTORIES = {
    "mail": "integrations.mail:mail_backend",
    "mailbox": "integrations.mailbox:mailbox_backend",
    "calendar": "integrations.calendar:calendar_backend",
    "reminders": "integrations.calendar:reminder_backend",
    "tasks": "integrations.tasks:task_backend",
    "chat": "integrations.chat:chat_backend",
    "files": "integrations.files:file_backend",
}


def backend(capability: str) -> Backend:
    """The configured backend of `capability`. LookupError for a capability nobody serves."""
    try:
        path = FACTORIES[capability]
    except KeyError:
        raise LookupError(f"No integration serves '{capability}'.") from None
    module, _, factory = path.partition(":")
    return getattr(import_module(module), factory)()


def check(capability: str) -> Health:
    """The capability's health. Never raises: a backend that cannot even be built is unhealthy, and says why."""
    try:
        chosen = backend(capability)
    except LookupError:
        return Health(True, "Nothing outside to check.", "local")
    except Exception as exc:  # A bad setting or a platform without the backend: say so, do not crash the caller.
        return Health(False, f"{type(exc).__name__}: {exc}")
    try:
        return chosen.health()
    except Exception as exc:
        logger.exception("The %s health check of %s raised", capability, chosen.name)
        return Health(False, f"{type(exc).__name__}: {exc}", chosen.name)


def health_report() -> dict[str, Health]:
    """Every capability's health, in the table's order."""
    return {capability: check(capability) for capability in FACTORIES}
