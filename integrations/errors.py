"""The one error type every backend raises."""

from __future__ import annotations


class IntegrationError(Exception):
    """An outside system failed. `permanent` says whether trying again could help.

    Transient errors (timeouts, 5xx, 429, a 4xx SMTP reply) are retried with
    backoff and count towards the integration's circuit breaker; permanent
    ones (bad credentials, 404, a 5xx SMTP reply to a recipient) are not.
    `retry_after` carries a server's own hint, in seconds. `capability` names
    the integration that failed ("chat", "mail"...) when it is known (see
    integrations.calls): a handler may use more than one, and the failure is
    charged to that one's circuit, not the handler's.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        capability: str | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.capability = capability


class Unavailable(IntegrationError):
    """The backend cannot work here at all (wrong platform, missing settings). Permanent; says what to do."""

    def __init__(self, message: str, *, capability: str | None = None) -> None:
        super().__init__(message, permanent=True, capability=capability)
