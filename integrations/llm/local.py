"""The local backend: the team's own rules first, then the built-in heuristics. No network, no model.

Rules (AnalysisRule, edited in the admin) are loaded and compiled once, when
the backend is made, in the caller's thread. analyze() then reads only the
compiled rules and the email's facts, never the database, so it can run in
many worker threads at once.

How the two combine: every matching rule may set the category and the
priority (the first rule that sets one wins) and propose its action; a rule
marked "stop" ends the list. The heuristics then fill the category, the
priority and the summary wherever the rules left them empty, and propose
their actions only when no rule proposed one: a rule that proposes is the
team's considered answer, not to be second-guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from integrations.llm.base import Analysis, AnalysisBackend, EmailFacts, ProposedAction
from integrations.llm.heuristics import heuristic_analysis
from integrations.models import AnalysisRule, ConditionField, ConditionOperator, RuleCondition, RuleMatch

# The placeholders rule parameters may use, and values that stand in for them when a rule is checked.
PLACEHOLDERS = ("subject", "from", "from_name", "mailbox")
SAMPLE_VALUES = {
    "subject": "A sample subject",
    "from": "sender@example.com",
    "from_name": "Sample Sender",
    "mailbox": "mailbox@example.com",
}
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


def fill_placeholders(value: Any, values: dict[str, str]) -> Any:
    """`value` with {subject}, {from}, {from_name} and {mailbox} replaced in every string inside it.

    Not str.format: any other brace, and anything like {from.__class__}, is left as written.
    """
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: values[match[1]], value)
    if isinstance(value, dict):
        return {key: fill_placeholders(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, values) for item in value]
    return value


class BrokenRule(ValueError):
    """A rule in the database that cannot be used as it stands (saved without its checks)."""


@dataclass(frozen=True)
class Condition:
    """One RuleCondition, ready to test: the value folded for comparing, a regex compiled."""

    field: str
    header: str
    operator: str
    value: str
    pattern: re.Pattern[str] | None
    negate: bool

    @classmethod
    def compile(cls, condition: RuleCondition) -> Condition:
        if problems := condition.problems():
            raise BrokenRule(" ".join(problems.values()))
        regex = condition.operator == ConditionOperator.REGEX
        return cls(
            condition.field,
            condition.header.strip(),
            condition.operator,
            condition.value.casefold(),
            re.compile(condition.value, re.IGNORECASE) if regex else None,
            condition.negate,
        )

    def holds(self, facts: EmailFacts, max_chars: int) -> bool:
        """Whether the email passes this test (negated when asked)."""
        texts = [text[:max_chars] for text in self._texts(facts)]
        if self.operator == ConditionOperator.EXISTS:
            found = any(texts) if self.field != ConditionField.HEADER else bool(texts)
        elif self.pattern is not None:
            found = any(self.pattern.search(text) for text in texts)
        else:
            found = any(self._compare(text.casefold()) for text in texts)
        return found != self.negate

    def _texts(self, facts: EmailFacts) -> list[str]:
        """The strings the field means; the test holds when it holds for one of them."""
        if self.field == ConditionField.FROM:
            both = f"{facts.from_name} <{facts.from_address}>" if facts.from_name else facts.from_address
            return [facts.from_address, facts.from_name, both]
        if self.field == ConditionField.TO:
            return [*facts.to, *facts.cc]
        if self.field == ConditionField.SUBJECT:
            return [facts.subject]
        if self.field == ConditionField.BODY:
            return [facts.body]
        if self.field == ConditionField.HEADER:
            wanted = self.header.lower()
            return [value for name, value in facts.headers if name.lower() == wanted]
        return [facts.subject, facts.body]  # ANY

    def _compare(self, text: str) -> bool:
        if self.operator == ConditionOperator.EQUALS:
            return text.strip() == self.value.strip()
        if self.operator == ConditionOperator.STARTS_WITH:
            return text.startswith(self.value)
        if self.operator == ConditionOperator.ENDS_WITH:
            return text.endswith(self.value)
        return self.value in text  # CONTAINS


@dataclass(frozen=True)
class Rule:
    """One active AnalysisRule with its conditions compiled, detached from the database."""

    name: str
    match_any: bool
    conditions: tuple[Condition, ...]
    category: str
    priority: int | None
    action_type: str
    action_params: dict[str, Any]
    confidence: float
    rationale: str
    stop: bool

    @classmethod
    def compile(cls, rule: AnalysisRule) -> Rule:
        conditions = []
        for number, condition in enumerate(rule.conditions.all(), start=1):
            try:
                conditions.append(Condition.compile(condition))
            except BrokenRule as exc:
                raise BrokenRule(f"condition {number}: {exc}") from None
        if problems := rule.problems():
            raise BrokenRule(" ".join(problems.values()))
        return cls(
            name=rule.name,
            match_any=rule.match == RuleMatch.ANY,
            conditions=tuple(conditions),
            category=rule.category,
            priority=rule.priority,
            action_type=rule.action_type,
            action_params=rule.action_params,
            confidence=rule.confidence,
            rationale=rule.rationale,
            stop=rule.stop,
        )

    def matches(self, facts: EmailFacts, max_chars: int) -> bool:
        """Whether the email matches: all conditions or any, as the rule says; always when it has none."""
        if not self.conditions:
            return True
        combine = any if self.match_any else all
        return combine(condition.holds(facts, max_chars) for condition in self.conditions)

    def proposal(self, facts: EmailFacts) -> ProposedAction:
        """The rule's action for this email, its placeholders filled."""
        values = {
            "subject": " ".join(facts.subject.split()),
            "from": facts.from_address,
            "from_name": " ".join(facts.from_name.split()),
            "mailbox": facts.mailbox,
        }
        return ProposedAction(
            self.action_type,
            fill_placeholders(self.action_params, values),
            self.confidence,
            self.rationale or f"Rule '{self.name}' matched",
            self.priority,
        )


class LocalRulesBackend(AnalysisBackend):
    """The team's rules, then the built-in heuristics (integrations.llm.heuristics)."""

    name = "local"

    def __init__(self, rules: Iterable[AnalysisRule] | None = None) -> None:
        """Compile the given rules, or the active ones in the database (one query set; in the caller's thread)."""
        if rules is None:
            rules = AnalysisRule.objects.filter(active=True).prefetch_related("conditions")
        self.rules: list[Rule] = []
        # Said in every analysis, so a broken rule shows where its effect is missed.
        self.load_notes: list[str] = []
        for rule in sorted((rule for rule in rules if rule.active), key=lambda rule: (rule.order, rule.pk or 0)):
            try:
                self.rules.append(Rule.compile(rule))
            except BrokenRule as exc:
                self.load_notes.append(f"Rule '{rule.name}' skipped: {exc}")
        self.max_chars = settings.ANALYSIS_MAX_BODY_CHARS
        self.default_zone = settings.TIME_ZONE

    def analyze(self, facts: EmailFacts) -> Analysis:
        """Apply the rules in order, then the heuristics where the rules left gaps. Touches no database."""
        category, priority, actions, notes = "", None, [], list(self.load_notes)
        for rule in self.rules:
            if not rule.matches(facts, self.max_chars):
                continue
            notes.append(f"Rule '{rule.name}' matched.")
            category = category or rule.category
            priority = priority if priority is not None else rule.priority
            if rule.action_type:
                actions.append(rule.proposal(facts))
            if rule.stop:
                break
        analysis = heuristic_analysis(facts, default_zone=self.default_zone, max_chars=self.max_chars)
        notes.extend(analysis.notes)
        if actions:
            analysis.actions, analysis.draft_reply = actions, ""
            notes.append("The rules proposed actions, so the heuristics' proposals were left out.")
        analysis.category = category or analysis.category
        analysis.priority = priority if priority is not None else analysis.priority
        analysis.notes = notes
        analysis.backend = self.name
        return analysis
