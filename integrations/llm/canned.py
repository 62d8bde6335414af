"""Canned answers: the standard replies the heuristics send when an email clearly asks one common question."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CannedAnswer:
    """A standard answer to a common question, sent as it stands when an email clearly asks just that."""

    topic: str
    asks: re.Pattern[str]
    answer: str


def pattern(*alternatives: str) -> re.Pattern[str]:
    """One case-insensitive pattern that matches any of the alternatives."""
    return re.compile("|".join(alternatives), re.IGNORECASE)


# Generic on purpose: edit them to match your product (its sign-in page, its billing pages, your hours).
CANNED_ANSWERS = (
    CannedAnswer(
        "password reset",
        pattern(
            r"\b(?:reset|forgot|forgotten|lost|change|recover)\w*\b.{0,40}\bpassword",
            r"\bpassword\b.{0,40}\b(?:reset|forgot|forgotten|expired|doesn't work|does not work|not working)",
        ),
        'You can reset your password yourself: on the sign-in page choose "Forgot password?", enter the '
        "address you sign in with, and follow the link we email you.\n\n"
        "If no email arrives within ten minutes, please check your spam folder, or reply to this message "
        "and we will reset it for you.",
    ),
    CannedAnswer(
        "support hours",
        pattern(
            r"\b(?:opening|office|business|support|service)\s+hours\b",
            r"\bwhen\s+(?:are\s+you|is\s+(?:your|the)\s+\w+(?:\s+team)?)\s+(?:open|available)\b",
            r"\bare\s+you\s+open\b",
        ),
        "Our support team answers email on working days, during office hours. Mail that arrives outside "
        "them is answered on the next working day.",
    ),
    CannedAnswer(
        "invoice copy",
        pattern(
            r"\b(?:copy|copies|resend|re-send)\b.{0,30}\binvoices?\b",
            r"\binvoices?\b.{0,30}\b(?:copy|again|resend|re-send)\b",
            r"\bsend\s+(?:me|us)\s+(?:the|a|my|our)?\s*invoices?\b",
        ),
        "Every invoice is in your account under Billing, where you can download it as a PDF at any time. "
        "If you need it sent to another address, reply with that address and we will send it.",
    ),
)
