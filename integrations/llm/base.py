"""What every analysis backend is: email facts in, an Analysis out.

Backends never touch the database while analysing: the pipeline gathers the
facts first and writes the results afterwards, so analyses can run in
threads, many at once, while one thread owns the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from integrations.errors import IntegrationError

CATEGORIES = (
    "support",
    "outage",
    "meeting",
    "task",
    "approval",
    "billing",
    "legal",
    "newsletter",
    "auto_reply",
    "bounce",
    "spam",
    "other",
)
PRIORITIES = {"low": 10, "normal": 20, "high": 30, "urgent": 40}


class AnalysisError(IntegrationError):
    """The backend could not analyse the email (down, timed out, answered nonsense)."""


@dataclass
class ProposedAction:
    """One action the analysis suggests. Untrusted: the proposal and the policy check it."""

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.5
    rationale: str = ""
    priority: int | None = None


@dataclass
class Analysis:
    """What a backend made of one email."""

    category: str = "other"
    priority: int = PRIORITIES["normal"]
    summary: str = ""
    actions: list[ProposedAction] = field(default_factory=list)
    draft_reply: str = ""
    backend: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    notes: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class EmailFacts:
    """The parts of an email a backend may read, taken from the database beforehand."""

    id: int | None
    mailbox: str
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[str, ...]  # file names
    automated: str  # Automated: "" or auto_reply, bounce, list, own
    received_at: str  # ISO 8601

    def header(self, name: str) -> str:
        """The first header of that name, or ''."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), "")


class AnalysisBackend:
    """One way of reading email. Subclasses set `name` and implement analyze()."""

    name: str = ""

    def analyze(self, facts: EmailFacts) -> Analysis:
        """Analyse one email. Raises AnalysisError when it cannot."""
        raise NotImplementedError

    def health(self) -> str:
        """'' when the backend can work, otherwise what is wrong."""
        return ""
