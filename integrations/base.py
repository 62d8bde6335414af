"""What every integration backend is: a name, the capability it serves, and a health check.

One base class per capability (mail out, mailbox, calendar, reminders, tasks,
chat, files) derives from `Backend`; the backends themselves derive from that
(healthchecks' Transport pattern, STYLE.md). Backends talk to their system and
raise IntegrationError; they never write Mailroom's state: the executor records
attempts, errors and results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Health:
    """One backend's answer to "are you there?". `detail` is for people and never holds a secret."""

    ok: bool
    detail: str
    backend: str = ""


class Backend:
    """One outside system, as one capability sees it."""

    # The capability it serves: its circuit breaker and health entry carry this name.
    capability: ClassVar[str]
    # Which system: "smtp", "imap", "caldav", "jira", "slack", "s3", "local"...
    # A class attribute, or set per instance where a setting decides (mail).
    name: str

    def health(self) -> Health:
        """Whether the system answers, in at most one cheap round trip. Never raises: failure is `ok=False`."""
        return Health(True, "Nothing outside to check.", self.name)

    def healthy(self, detail: str) -> Health:
        return Health(True, detail, self.name)

    def unhealthy(self, detail: str) -> Health:
        return Health(False, detail, self.name)
