"""Built-in heuristics: what the local backend makes of an email when no rule proposed an action.

Plain patterns over the subject and the sender's own text (quoted replies
are left out), tried in a fixed order; the first that fits decides the
category, the priority and the proposals. They need nothing outside the
machine and touch no database. Confidences are honest: a pattern that only
guesses proposes at a confidence the thresholds route to a person.

The heuristics never propose forwarding, and never take a recipient from
the body: every address they propose comes from the email's own headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from actions.handlers.base import is_address
from actions.handlers.outgoing import MAX_RECIPIENTS
from actions.handlers.tasks import TITLE_CHARS
from integrations.llm.base import PRIORITIES, Analysis, EmailFacts, ProposedAction
from integrations.llm.canned import CANNED_ANSWERS, pattern
from integrations.llm.dates import find_deadline, find_duration_minutes, find_meeting_time, received_moment

LOW, NORMAL, HIGH, URGENT = (PRIORITIES[name] for name in ("low", "normal", "high", "urgent"))
SUMMARY_CHARS = 200
EXCERPT_CHARS = 1000
# A long email has more in it than one canned answer can meet.
CANNED_MAX_CHARS = 1500
SIGN_OFF = "Best regards,\nThe support team"


_QUOTE_START = re.compile(
    r"^(?:On\s.{0,200}\bwrote:\s*$|-{2,}\s*(?:Original Message|Forwarded message)|_{5,}\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fwd?|aw|wg)\s*:\s*)+", re.IGNORECASE)
_GREETING = re.compile(
    r"^(?:hi|hello|hey|dear|good\s+(?:morning|afternoon|evening))\b[^.!?\n]{0,40}[,!]?$", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NAME = re.compile(r"^[^\W\d_][\w.' -]{0,39}$")

_URGENT = pattern(r"\burgent(?:ly)?\b", r"\basap\b", r"\bas soon as possible\b", r"\bimmediately\b", r"\bemergency\b")
_NEWSLETTER = pattern(
    r"\bunsubscribe\b.{0,80}https?://",
    r"https?://\S{0,120}unsubscribe",
    r"\b(?:weekly|monthly|daily)\s+(?:digest|roundup|newsletter)\b",
    r"\bview\s+(?:this\s+(?:email|message)\s+)?in\s+(?:your\s+)?browser\b",
)
_OUTAGE = pattern(
    r"\boutages?\b",
    r"\bincident\b",
    r"\b(?:is|are|went|goes|gone|been|was|were)\s+(?:completely\s+|still\s+)?down\b",
    r"\bdown\s+(?:for|since)\b",
    r"\b(?:returns?|returning|throws?|throwing|gives|giving|getting|shows?|showing)\s+(?:an?\s+)?(?:HTTP\s+)?50[234]\b",
    r"\b50[234]\s+(?:errors?|bad gateway|service unavailable|gateway timeout)\b",
    r"\b(?:bad gateway|service unavailable|gateway timeout)\b",
)
_NOT_WORKING = pattern(r"\b(?:not|stopped|isn't|aren't)\s+working\b", r"\bis\s+broken\b")
_ALL_CUSTOMERS = pattern(r"\ball\s+(?:our\s+|of\s+our\s+)?(?:customers|users)\b")
_OUTAGE_HINTS = (pattern(r"\bproduction\b"), _ALL_CUSTOMERS, _URGENT)
_APPROVAL = pattern(r"\b(?:approve|approval|sign[- ]?off|sign\s+off)\b")
_PURCHASE_ORDER = re.compile(r"\bPO[- ]?\d{3,}\b")
_REFERENCE = re.compile(r"\b(?:PO|REQ|PR|CR)-\d{3,}\b")
_MEETING = pattern(r"\b(?:meet|meeting|call|catch[- ]up|schedule)\b")
_MEETING_REQUEST = pattern(
    r"\b(?:meet|meeting|catch[- ]up)\b",
    r"\bschedule\s+(?:a|an|the|our)\b",
    r"\b(?:set up|arrange|book|have|hop on)\s+a\s+call\b",
)
_TASK = pattern(
    r"\b(?:can|could|would)\s+(?:someone|somebody|anyone)\b",
    r"\bplease\s+(?:update|fix|prepare|review|change|add|remove|create|draft|set up|deploy|renew|correct)\b",
    r"\bdeadline\b",
    r"\b(?:by|before)\s+(?:monday|tuesday|wednesday|thursday|friday|tomorrow|end of|eod|the end)\b",
)
_BILLING = pattern(
    r"\b(?:invoices?|refunds?|refunded|charged|overcharged|charges|payments?|billing|billed|receipts?)\b"
)
_SUPPORT = pattern(
    r"\?",
    r"\bhow\s+(?:do|can|should)\s+(?:i|we)\b",
    r"\b(?:can't|cannot|can not|unable to)\s+(?:log ?in|sign in|access)\b",
    r"\b(?:password|help)\b",
)

# Amounts as people write them: "EUR 4,800", "$1,200.50", "4.800,00 €".
_CURRENCY_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP"}
_CODES = "EUR|USD|GBP|CHF|SEK|NOK|DKK|PLN|CZK|CAD|AUD|JPY"
_NUMBER = r"\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT = re.compile(
    rf"(?:\b(?P<code>{_CODES})\s?|(?P<symbol>[€$£])\s?)(?P<number>{_NUMBER})\b"
    rf"|\b(?P<number_first>{_NUMBER})\s?(?:(?P<code_after>{_CODES})\b|(?P<symbol_after>[€$£]))"
)


@dataclass(frozen=True)
class Mail:
    """The parts of one email the heuristics read, prepared once."""

    facts: EmailFacts
    subject: str  # without Re:/Fwd:
    own: str  # the body without what it quotes
    text: str  # subject and own text, for the patterns
    received_at: datetime
    zone: str

    @classmethod
    def read(cls, facts: EmailFacts, *, default_zone: str, max_chars: int) -> Mail:
        subject = _REPLY_PREFIX.sub("", " ".join(facts.subject.split()))
        own = own_text(facts.body[:max_chars])
        return cls(facts, subject, own, f"{subject}\n{own}", received_moment(facts.received_at), default_zone)

    def title(self, prefix: str = "") -> str:
        """A task title: the subject (or the first sentence) after `prefix`."""
        return f"{prefix}{self.subject or first_sentence(self.own) or 'Email from ' + self.sender}"[:TITLE_CHARS]

    @property
    def sender(self) -> str:
        facts = self.facts
        return f"{facts.from_name} <{facts.from_address}>" if facts.from_name else facts.from_address or "unknown"

    def excerpt(self) -> str:
        return f"From {self.sender}:\n\n{self.own[:EXCERPT_CHARS]}".strip()

    def greeting(self) -> str:
        name = self.facts.from_name.split(",")[0].strip()
        first = name.split()[0] if name and _NAME.match(name) else ""
        return f"Hello {first}," if first else "Hello,"


def heuristic_analysis(facts: EmailFacts, *, default_zone: str = "UTC", max_chars: int = 12000) -> Analysis:
    """Categorise one email and propose actions with the built-in patterns (no rules, no database)."""
    mail = Mail.read(facts, default_zone=default_zone, max_chars=max_chars)
    analysis = next(found for detect in DETECTORS if (found := detect(mail)) is not None)
    if facts.automated or analysis.category in _MACHINE_CATEGORIES:
        # Machines' first sentences say little ("View this email in your browser"); their subjects say more.
        summary = mail.subject
    else:
        summary = first_sentence(mail.own) or mail.subject
        if analysis.priority < HIGH and _URGENT.search(mail.text):
            analysis.priority = HIGH
    analysis.summary = (summary or "(no subject)")[:SUMMARY_CHARS]
    return analysis


def own_text(body: str) -> str:
    """What the sender wrote: the body before the message it quotes, without "> " lines.

    A message that is nothing but a quote (a bare forward) is read whole.
    """
    match = _QUOTE_START.search(body)
    head = body[: match.start()] if match else body
    own = "\n".join(line for line in head.splitlines() if not line.lstrip().startswith(">")).strip()
    return own or body.strip()


def first_sentence(text: str) -> str:
    """The first sentence after any greeting ("Hi team,"), on one line; '' when there is none."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    while lines and _GREETING.match(lines[0]):
        lines.pop(0)
    paragraph = " ".join(lines)
    return _SENTENCE_END.split(paragraph, maxsplit=1)[0][:SUMMARY_CHARS] if paragraph else ""


def amount_in(text: str) -> tuple[float, str | None] | None:
    """The first amount of money written in the text, with its currency code when it says one."""
    match = _AMOUNT.search(text)
    if match is None:
        return None
    number = match["number"] or match["number_first"]
    symbol = match["symbol"] or match["symbol_after"]
    code = match["code"] or match["code_after"] or _CURRENCY_SYMBOLS.get(symbol or "")
    return _number(number), code


def _number(written: str) -> float:
    digits = written.replace(" ", "").replace("'", "")
    if "," in digits and "." in digits:
        # Both: the one written last separates the decimals.
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        digits = digits.replace("." if decimal == "," else ",", "").replace(decimal, ".")
    elif digits.count(",") > 1 or digits.count(".") > 1 or re.search(r"[,.]\d{3}$", digits):
        digits = digits.replace(",", "").replace(".", "")  # thousands: "4,800", "1.200.000"
    else:
        digits = digits.replace(",", ".")
    return float(digits)


# --- The detectors, in the order they are tried -------------------------------------------------


def _archive(confidence: float, rationale: str) -> ProposedAction:
    return ProposedAction("archive_email", {}, confidence, rationale, LOW)


_AUTOMATED = {
    "bounce": ("bounce", 0.9, "A delivery failure report: there is nobody to answer; archived for the record."),
    "auto_reply": ("auto_reply", 0.9, "An automatic reply (out of office or similar): nothing to answer."),
    "list": ("newsletter", 0.95, "Mailing-list mail: to read at leisure, nothing to answer."),
}
_MACHINE_CATEGORIES = {"bounce", "auto_reply", "newsletter"}


def automated(mail: Mail) -> Analysis | None:
    """Mail a machine sent: archive it, never answer it (RFC 3834). Our own mail is left alone."""
    kind = mail.facts.automated
    if not kind:
        return None
    if kind not in _AUTOMATED:
        return Analysis("other", LOW, notes=[f"Heuristics: automated mail ({kind}), nothing to do."])
    category, confidence, rationale = _AUTOMATED[kind]
    return Analysis(category, LOW, actions=[_archive(confidence, rationale)], notes=[f"Heuristics: {category}."])


def newsletter(mail: Mail) -> Analysis | None:
    """Bulk mail sent without mailing-list headers: an unsubscribe link or a digest."""
    if not _NEWSLETTER.search(mail.text):
        return None
    action = _archive(0.85, "Looks like a newsletter (unsubscribe link or digest) though it has no list headers.")
    return Analysis("newsletter", LOW, actions=[action], notes=["Heuristics: newsletter without list headers."])


def outage(mail: Mail) -> Analysis | None:
    """Something is down: escalate at once and give the incident an owner."""
    hints = sum(1 for hint in _OUTAGE_HINTS if hint.search(mail.text))
    signal = _OUTAGE.search(mail.text)
    # One clear outage word, or two hints together ("production" and "urgent"), or "not working" urgently.
    if not (signal or (_NOT_WORKING.search(mail.text) and _URGENT.search(mail.text)) or hints >= 2):
        return None
    why = f"Outage words ({signal[0]!r})" if signal else "Something is not working, urgently"
    actions = [
        # Sure enough to run without waiting (0.9 is the default "auto" threshold): a mistaken escalation
        # costs the team one notice, a missed outage costs the customers every minute.
        ProposedAction(
            "escalate_issue",
            {"reason": f"Possible outage reported by {mail.sender}: {mail.title()}", "priority": "urgent"},
            0.9,
            f"{why}: a possible outage is escalated at once.",
            URGENT,
        ),
        ProposedAction(
            "create_task",
            {"title": mail.title("Incident: "), "description": mail.excerpt(), "skills": ["incident-response"]},
            0.85,
            "An outage needs an owner from incident response.",
            URGENT,
        ),
    ]
    return Analysis("outage", URGENT, actions=actions, notes=[f"Heuristics: outage. {why}."])


def approval(mail: Mail) -> Analysis | None:
    """Someone asks for an approval: propose approving, at a confidence that leaves it to a person."""
    if not (_APPROVAL.search(mail.text) or _PURCHASE_ORDER.search(mail.text)):
        return None
    params: dict = {"decision": "approve"}
    if reference := _REFERENCE.search(mail.text) or _PURCHASE_ORDER.search(mail.text):
        params["reference"] = reference[0]
    if amount := amount_in(mail.text):
        params["amount"], currency = amount
        if currency:
            params["currency"] = currency
    action = ProposedAction(
        "approve_request",
        params,
        0.6,
        "An approval request: a person must decide. Proposed as approve, with the reference and amount read "
        "from the email, for the approver to confirm or change.",
        HIGH,
    )
    return Analysis("approval", HIGH, actions=[action], notes=["Heuristics: approval request."])


def meeting(mail: Mail) -> Analysis | None:
    """A meeting request: an invitation when a date and time can be read, else a task to arrange it."""
    if not _MEETING.search(mail.text):
        return None
    when = find_meeting_time(mail.text, mail.received_at, mail.zone)
    attendees = _attendees(mail.facts)
    # A time already past when the email came is misread or out of date: a person arranges it.
    if when is not None and when.aware() > mail.received_at and attendees:
        params = {
            "title": mail.title() if mail.subject else f"Meeting with {mail.sender}",
            "timezone": when.zone,
            "start": when.start.isoformat(),
            "attendees": attendees,
            "description": f"Requested by {mail.sender}.",
        }
        if minutes := find_duration_minutes(mail.text):
            params["duration_minutes"] = minutes
        start = when.start
        rationale = (
            f"A meeting request with a concrete time: {start:%A} {start.day} {start:%B %Y, %H:%M} ({when.zone})."
        )
        action = ProposedAction("schedule_meeting", params, 0.8, rationale)
        return Analysis("meeting", NORMAL, actions=[action], notes=["Heuristics: meeting request with a time."])
    if not _MEETING_REQUEST.search(mail.text):
        return None
    action = ProposedAction(
        "create_task",
        {"title": mail.title("Arrange meeting: "), "description": mail.excerpt()},
        0.55,
        "A meeting request without a date and time that can be read: someone should arrange it.",
    )
    return Analysis("meeting", NORMAL, actions=[action], notes=["Heuristics: meeting request without a time."])


def task(mail: Mail) -> Analysis | None:
    """A request for work ("can someone", "please update", "by Friday"): a task, due when it says."""
    if not _TASK.search(mail.text):
        return None
    params = {"title": mail.title(), "description": mail.excerpt()}
    if due := find_deadline(mail.text, mail.received_at, mail.zone):
        params["due_at"] = due.isoformat()
    action = ProposedAction("create_task", params, 0.75, "A request for work" + (" with a deadline." if due else "."))
    return Analysis("task", NORMAL, actions=[action], notes=["Heuristics: task request."])


def canned_answer(mail: Mail) -> Analysis | None:
    """A common question that one standard answer clearly meets: the auto-responder."""
    if len(mail.own) > CANNED_MAX_CHARS:
        return None
    matches = [canned for canned in CANNED_ANSWERS if canned.asks.search(mail.text)]
    if len(matches) != 1:
        return None  # none, or more than one question: a person answers better
    canned = matches[0]
    body = f"{mail.greeting()}\n\n{canned.answer}\n\n{SIGN_OFF}\n"
    rationale = f"Auto-response: the standard answer on {canned.topic}."
    action = ProposedAction("send_reply", {"body": body}, 0.92, rationale)
    return Analysis(
        "support", NORMAL, actions=[action], draft_reply=body, notes=[f"Heuristics: canned answer ({canned.topic})."]
    )


def billing(mail: Mail) -> Analysis | None:
    """Invoices, refunds, charges: a billing specialist takes it, and the sender hears it arrived."""
    if not _BILLING.search(mail.text):
        return None
    body = (
        f'{mail.greeting()}\n\nThank you for your message about "{mail.subject or "your account"}". '
        "Our billing team is looking into it and will get back to you shortly.\n\n"
        f"{SIGN_OFF}\n"
    )
    actions = [
        ProposedAction(
            "delegate_task",
            {"skills": ["billing"], "note": f"Billing question from {mail.sender}: {mail.title()}"},
            0.8,
            "Billing questions go to a billing specialist.",
        ),
        ProposedAction("send_reply", {"body": body}, 0.6, "Acknowledge the billing question; a person answers it."),
    ]
    return Analysis("billing", NORMAL, actions=actions, draft_reply=body, notes=["Heuristics: billing."])


def support(mail: Mail) -> Analysis | None:
    """A question without a standard answer: someone in customer support takes it."""
    if not _SUPPORT.search(mail.text):
        return None
    action = ProposedAction(
        "delegate_task",
        {"skills": ["customer-support"], "note": f"Question from {mail.sender}: {mail.title()}"},
        0.7,
        "A customer question with no standard answer: customer support takes it.",
    )
    return Analysis("support", NORMAL, actions=[action], notes=["Heuristics: support question."])


def other(mail: Mail) -> Analysis:
    """Nothing fits: no proposals, so the pipeline puts it in the review queue."""
    return Analysis("other", NORMAL, notes=["Heuristics: no pattern fits; a person should look."])


# First match wins, so the order settles overlaps: an outage that mentions a meeting is an outage, and a
# request for a copy of an invoice gets its canned answer rather than going to billing.
DETECTORS: tuple[Callable[[Mail], Analysis | None], ...] = (
    automated,
    newsletter,
    outage,
    approval,
    meeting,
    task,
    canned_answer,
    billing,
    support,
    other,
)


def _attendees(facts: EmailFacts) -> list[str]:
    """Who to invite: the sender and those in Cc, each once, never the mailbox itself."""
    seen = {facts.mailbox.lower()}
    attendees = []
    for address in (facts.from_address, *facts.cc):
        if is_address(address) and address.lower() not in seen:
            seen.add(address.lower())
            attendees.append(address)
    return attendees[:MAX_RECIPIENTS]
