"""Deciding, per proposed action, whether it runs at once, waits for a person, or stays a suggestion.

The analysis is untrusted input: whatever an email says, these rules come
from the policies and thresholds in the database, and a policy that asks for
approval always wins over a high confidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from actions.audit import record_audit
from actions.executor import queue_action
from actions.guards import in_domains, outside_recipients
from actions.handlers import get_handler
from actions.models import Action, ActionSource, ActionStatus, ActionType, Email
from actions.transitions import transition_action
from approvals.models import ApprovalPolicy, Condition, ConfidenceThreshold
from integrations.models import LocalTask
from teams.models import ROLE_RANK, TeamMember

AUTO, APPROVAL, SUGGEST = "auto", "approval", "suggest"
# Used when no threshold row exists for a type.
DEFAULT_THRESHOLDS = (0.9, 0.5)
# Types that answer the sender of the email.
ANSWERS = frozenset({ActionType.SEND_REPLY, ActionType.APPROVE_REQUEST, ActionType.FOLLOW_UP})
ANALYSED = (ActionSource.AI, ActionSource.RULE)


@dataclass(frozen=True)
class Route:
    """Where an action goes, under which policy, and why in words."""

    kind: str  # auto, approval or suggest
    reason: str
    policy: ApprovalPolicy | None = None


def _amount(action: Action) -> Decimal | None:
    try:
        value = action.params.get("amount")
        return Decimal(str(value)) if value is not None else None
    except (InvalidOperation, ValueError):
        return None


def _sender_known(email: Email | None) -> bool:
    if email is None:
        return True
    address = email.from_address
    if TeamMember.objects.filter(user__email__iexact=address).exists():
        return True
    # Known: we have had mail from this address before this message.
    return Email.objects.filter(from_address__iexact=address, received_at__lt=email.received_at).exists()


def _recipients(action: Action) -> list[str]:
    """Who the action would send mail to, as its handler reads its parameters."""
    handler = get_handler(action.type)
    return handler.recipients(action, handler.parse(action))


def matches(policy: ApprovalPolicy, action: Action) -> bool:
    """Whether the policy's condition holds for the action."""
    condition = policy.condition
    if condition == Condition.ALWAYS:
        return True
    if condition == Condition.EXTERNAL_RECIPIENT:
        return any(not in_domains(address, settings.INTERNAL_DOMAINS) for address in _recipients(action))
    if condition == Condition.AMOUNT_ABOVE:
        amount = _amount(action)
        return amount is not None and amount > policy.threshold
    if condition == Condition.CONFIDENCE_BELOW:
        return action.confidence is not None and Decimal(str(action.confidence)) < policy.threshold
    if condition == Condition.UNKNOWN_SENDER:
        return not _sender_known(action.email)
    return False


def _strictest(policies: list[ApprovalPolicy]) -> ApprovalPolicy:
    # More approvals first, then the higher approver role, then the shorter timeout.
    return max(
        policies, key=lambda p: (p.approvals_required, ROLE_RANK.get(p.approver_role, 0), -p.timeout.total_seconds())
    )


def _answered_automatically_since(action: Action, since) -> bool:
    """Whether the sender already had an automatic answer (one no person approved) since `since`."""
    return (
        Action.objects.filter(
            type__in=ANSWERS,
            source__in=ANALYSED,
            email__from_address__iexact=action.email.from_address,
            status__in=[ActionStatus.QUEUED, ActionStatus.RUNNING, ActionStatus.SUCCEEDED],
            created_at__gte=since,
            approvals__isnull=True,
        )
        .exclude(pk=action.pk)
        .exists()
    )


def _limits_on_analysis(action: Action) -> Route | None:
    """What the analysis may never do alone, whatever the policies say: its input is a stranger's email."""
    email = action.email
    if email is not None and action.type in ANSWERS:
        if email.automated:
            return Route(
                SUGGEST,
                f"the email is automated mail ({email.get_automated_display().lower()}) and is never answered "
                "automatically (RFC 3834)",
            )
        period = timedelta(hours=settings.AUTO_REPLY_PERIOD_HOURS)
        if action.type == ActionType.SEND_REPLY and _answered_automatically_since(action, timezone.now() - period):
            return Route(
                SUGGEST, f"{email.from_address} already had an automatic answer in the last {period} (RFC 3834)"
            )
    if action.type == ActionType.APPROVE_REQUEST:
        return Route(APPROVAL, "answering an approval request on someone's behalf always needs a person")
    task_id = action.params.get("task_id")
    if task_id is not None and not LocalTask.objects.filter(pk=task_id, email_id=action.email_id).exists():
        # An email may name any task ("mark task 12 done"): the analysis acts alone on its own email's work only.
        return Route(APPROVAL, f"task {task_id} is not a task of this email")
    # The same rule the guard applies when the action runs: here it asks a person first.
    outside = outside_recipients(action, _recipients(action))
    if outside:
        return Route(
            APPROVAL, f"recipients taken from the email ({', '.join(outside)}) are outside the allowed domains"
        )
    return None


def evaluate(action: Action, *, reviewed: bool = False) -> Route:
    """Where `action` should go. Pure: writes nothing.

    `reviewed`: a person accepted the proposal in the review queue, so its
    confidence no longer counts and a suggestion may go ahead; policies, and
    the approval the analysis' limits ask for, still apply.
    """
    limited = _limits_on_analysis(action) if action.source in ANALYSED else None
    if limited is not None and limited.kind == SUGGEST:
        if not reviewed:
            return limited
        limited = None
    policies = ApprovalPolicy.objects.filter(active=True, action_type__in=["", action.type]).select_related(
        "approver_group"
    )
    asking = [policy for policy in policies if policy.requires_approval and matches(policy, action)]
    threshold = ConfidenceThreshold.objects.filter(action_type=action.type).first()
    auto, suggest = (threshold.auto, threshold.suggest) if threshold else DEFAULT_THRESHOLDS
    # A person or a program proposing through the API means it; only the analysis is scored.
    scored = action.source in ANALYSED and action.confidence is not None and not reviewed

    if scored and action.confidence < suggest:
        return Route(SUGGEST, f"confidence {action.confidence:.2f} is below {suggest:.2f}: a suggestion only")
    if asking:
        policy = _strictest(asking)
        return Route(APPROVAL, f"policy '{policy.name}' asks for approval", policy)
    if limited is not None:
        return limited
    if scored and action.confidence < auto:
        return Route(APPROVAL, f"confidence {action.confidence:.2f} is below {auto:.2f}: a person decides")
    return Route(
        AUTO, "no policy asks for approval" + (f" and confidence is {action.confidence:.2f}" if scored else "")
    )


def route_action(action: Action, *, acting_user=None, actor: str = "policy", reviewed: bool = False) -> Route:
    """Apply the route: queue the action, ask for approval, or leave it proposed as a suggestion."""
    from approvals.decisions import request_approval

    route = evaluate(action, reviewed=reviewed)
    with transaction.atomic():
        if route.kind == AUTO:
            queue_action(action, acting_user=acting_user, actor=actor, reason=route.reason)
        elif route.kind == APPROVAL:
            transition_action(
                action, ActionStatus.PENDING_APPROVAL, acting_user=acting_user, actor=actor, reason=route.reason
            )
            request_approval(action, route.policy)
        else:
            record_audit(
                "action.suggested",
                target=action,
                acting_user=acting_user,
                actor=actor,
                details={"reason": route.reason},
            )
    return route
