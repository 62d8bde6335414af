"""What the approval emails and the approval pages say about an approval: one builder for both."""

from __future__ import annotations

import json
from typing import Any

from django import template

from approvals.models import Approval
from teams.notices import action_facts

register = template.Library()


def _readable(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def readable_params(params: dict[str, Any]) -> list[dict[str, str]]:
    """The action's parameters as label and value rows, in their stored order."""
    rows = []
    for key, value in params.items():
        text = _readable(value)
        rows.append(
            {
                "label": str(key).replace("_", " ").capitalize(),
                "value": text,
                # In the text email a multi-line value stays under its label.
                "value_indented": "\n    ".join(text.splitlines()),
            }
        )
    return rows


def _why(approval: Approval) -> str:
    if approval.policy is not None:
        why = f"The policy “{approval.policy.name}” asks for approval."
    else:
        why = "The analysis was not sure enough to act without a person."
    if approval.level > 1:
        why += f" Nobody decided in time, so it was escalated (level {approval.level})."
    return why


@register.filter
def person(user) -> str:
    """A user as people know them: the full name, or the login name when there is none."""
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


@register.simple_tag
def approval_details(approval: Approval) -> dict[str, Any]:
    """Everything a person deciding (or told about) the approval should see, as plain values."""
    action = approval.action
    facts = action_facts(action)
    confidence = ""
    if action.confidence is not None:
        confidence = f"{action.confidence:.0%} ({action.get_source_display()})"
    return {
        **facts,
        "action_type": action.get_type_display(),
        "params": readable_params(action.params or {}),
        "confidence": confidence,
        "rationale": action.rationale.strip(),
        "rationale_quoted": "\n".join(f"  {line}".rstrip() for line in action.rationale.strip().splitlines()),
        "proposed_by": person(action.created_by) if action.created_by_id else action.get_source_display(),
        "why": _why(approval),
        "deadline": approval.expires_at,
        "approvals_required": approval.approvals_required,
    }
