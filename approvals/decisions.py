"""Asking for approval, deciding it, and what follows: the one write path for admin, emailed links and API.

When an approval is requested, each chosen approver (the members of the
policy's role, or of its group) gets the guardian permission to decide that
one approval and an email with a link of their own. Deciding checks that
permission, records one vote per approver, and on the last required
approval queues the action; one rejection rejects it. Either way the person
who proposed the action is told.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import assign_perm

from actions.audit import record_audit
from actions.executor import queue_action
from actions.models import Action, ActionStatus
from actions.transitions import TransitionConflict, transition_action
from approvals.models import (
    Approval,
    ApprovalPolicy,
    ApprovalRecipient,
    ApprovalStatus,
    ApprovalVote,
    Decision,
    OnTimeout,
)
from integrations import outbox
from teams.hierarchy import find_approvers
from teams.models import Role, role_above
from teams.notices import build_escalation_notice, render_message

PERMISSION = "approvals.decide_approval"
LINK_SALT = "mailroom.approval-link"


class DecisionRefused(Exception):
    """The decision was not recorded; the message says why (already decided, too late...).

    `forged` marks a link that was never ours, as against one that was good once.
    """

    def __init__(self, message: str, *, forged: bool = False) -> None:
        super().__init__(message)
        self.forged = forged


# --- Links ---------------------------------------------------------------------------


def link_token(approval: Approval, user) -> str:
    """A signed token for one approver and one approval (at its current escalation level)."""
    return signing.TimestampSigner(salt=LINK_SALT).sign_object({"a": approval.pk, "u": user.pk, "l": approval.level})


def read_link_token(token: str) -> tuple[Approval, object]:
    """The approval and approver a token is for; DecisionRefused if it is forged, expired or outdated."""
    signer = signing.TimestampSigner(salt=LINK_SALT)
    try:
        data = signer.unsign_object(token, max_age=settings.APPROVAL_LINK_MAX_AGE)
    except signing.SignatureExpired:
        raise DecisionRefused("This approval link has expired.") from None
    except signing.BadSignature:
        raise DecisionRefused("This approval link is not valid.", forged=True) from None
    approval = Approval.objects.select_related("action", "action__email").filter(pk=data.get("a")).first()
    user = get_user_model().objects.filter(pk=data.get("u"), is_active=True).first()
    if approval is None or user is None:
        raise DecisionRefused("This approval link is not valid any more.")
    if approval.level != data.get("l"):
        raise DecisionRefused("This approval was escalated; the link you used no longer decides it.")
    return approval, user


def link_url(approval: Approval, user) -> str:
    return settings.SITE_URL + reverse("approvals:link", args=[link_token(approval, user)])


# --- Asking -------------------------------------------------------------------------------


def _approvers(approval: Approval, exclude_ids: set[int]) -> list:
    if approval.approver_group_id:
        users = approval.approver_group.user_set.filter(is_active=True)
        return [user for user in users if user.pk not in exclude_ids]
    role = approval.approver_role or Role.LEAD
    members = find_approvers(role)
    return [member.user for member in members if member.user.is_active and member.user_id not in exclude_ids]


def request_approval(
    action: Action,
    policy: ApprovalPolicy | None,
    *,
    level: int = 1,
    escalated_from: Approval | None = None,
    role: str = "",
) -> Approval:
    """Create the approval, give its approvers the right to decide it, and mail each of them a link."""
    timeout = policy.timeout if policy else settings.APPROVAL_TIMEOUT
    # A role given here (an escalation) replaces the policy's role or group.
    group = policy.approver_group if policy and not role else None
    if not role:
        role = (policy.approver_role if policy else "") or ("" if group else Role.LEAD)
    approval = Approval.objects.create(
        action=action,
        policy=policy,
        approver_role=role,
        approver_group=group,
        approvals_required=policy.approvals_required if policy else 1,
        level=level,
        escalated_from=escalated_from,
        expires_at=timezone.now() + timeout,
    )
    # The proposer never approves their own action.
    exclude = {action.created_by_id} if action.created_by_id else set()
    approvers = _approvers(approval, exclude)
    if approval.approver_group_id:
        assign_perm(PERMISSION, approval.approver_group, approval)
    for user in approvers:
        assign_perm(PERMISSION, user, approval)
        ApprovalRecipient.objects.create(approval=approval, user=user, notified_at=timezone.now())
        _send(
            "approval_request",
            approval,
            to=user.email,
            purpose=f"approval-{approval.pk}-{user.pk}",
            extra={"approver": user, "link": link_url(approval, user)},
        )
    record_audit(
        "approval.requested",
        target=approval,
        actor="policy",
        details={
            "action": action.pk,
            "policy": str(policy or ""),
            "level": level,
            "approvers": [user.get_username() for user in approvers],
            "group": str(approval.approver_group or ""),
        },
    )
    if not approvers and not approval.approver_group_id:
        record_audit("approval.unassigned", target=approval, actor="policy", details={"role": approval.approver_role})
    return approval


def _send(template: str, approval: Approval, *, to: str, purpose: str, extra: dict) -> None:
    if not to:
        return
    context = {"approval": approval, "action": approval.action, "email": approval.action.email, **extra}
    subject = " ".join(render_to_string(f"email/{template}_subject.txt", context).split())
    message = render_message(template, context, subject=subject, to=[to])
    stored = outbox.store_email(message, message_id=outbox.message_id_for(approval.action_id, purpose), action=None)
    outbox.deliver_soon(stored)


# --- Deciding -------------------------------------------------------------------------------


def may_decide(user, approval: Approval) -> bool:
    return bool(user and user.is_active and (user.is_superuser or user.has_perm(PERMISSION, approval)))


def decide(approval: Approval, user, decision: str, *, comment: str = "", via: str = "admin") -> Approval:
    """Record `user`'s decision; approve or reject the approval when it is settled. Returns it, reloaded.

    Raises PermissionDenied for someone not asked to decide it, and
    DecisionRefused when it is no longer pending or this person already voted.
    """
    if decision not in Decision.values:
        raise DecisionRefused(f"'{decision}' is not a decision; approve or reject.")
    if not may_decide(user, approval):
        raise PermissionDenied("You may not decide this approval.")
    with transaction.atomic():
        current = Approval.objects.select_for_update().select_related("action").get(pk=approval.pk)
        if current.status != ApprovalStatus.PENDING:
            raise DecisionRefused(f"This approval was already {current.get_status_display().lower()}.")
        try:
            with transaction.atomic():
                ApprovalVote.objects.create(approval=current, voter=user, decision=decision, comment=comment, via=via)
        except IntegrityError:
            raise DecisionRefused("You have already decided this approval.") from None
        record_audit(
            f"approval.{decision}_vote", target=current, acting_user=user, details={"comment": comment, "via": via}
        )
        approvals = current.votes.filter(decision=Decision.APPROVE).count()
        if decision == Decision.REJECT:
            _settle(current, ApprovalStatus.REJECTED, user, comment)
        elif approvals >= current.approvals_required:
            _settle(current, ApprovalStatus.APPROVED, user, comment)
    return Approval.objects.get(pk=approval.pk)


def _settle(approval: Approval, status: str, user, comment: str) -> None:
    Approval.objects.filter(pk=approval.pk).update(
        status=status, decided_by=user, decided_at=timezone.now(), comment=comment
    )
    # Other approvals still open for this action (a parallel level) are moot now.
    action = Action.objects.get(pk=approval.action_id)
    if action.status != ActionStatus.PENDING_APPROVAL:
        return
    if status == ApprovalStatus.APPROVED:
        transition_action(action, ActionStatus.APPROVED, acting_user=user, reason=comment or "approved")
        queue_action(action, acting_user=user, reason="approved")
    else:
        transition_action(action, ActionStatus.REJECTED, acting_user=user, reason=comment or "rejected")
    approval.refresh_from_db()  # The email shows the decision just written: who, when, the comment.
    _notify_requester(approval, status, decided_by=str(user))


def _notify_requester(approval: Approval, status: str, *, decided_by: str) -> None:
    action = approval.action
    to = action.created_by.email if action.created_by_id and action.created_by.email else ""
    if not to and action.email_id:
        to = action.email.mailbox if "@" in action.email.mailbox else ""
    _send(
        "approval_decided",
        approval,
        to=to,
        purpose=f"approval-{approval.pk}-decided",
        extra={"status": status, "decided_by": decided_by},
    )


# --- Timeouts -----------------------------------------------------------------------------


def time_out(approval: Approval, now: datetime) -> str:
    """Settle one approval past its deadline, as its policy says: escalate up the chain, or reject.

    Escalation goes one role up each time and stops at the top, where the
    approval expires: it never loops.
    """
    with transaction.atomic():
        claimed = Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
            status=ApprovalStatus.ESCALATED, decided_at=now
        )
        if claimed != 1:
            return "already settled"
        action = Action.objects.get(pk=approval.action_id)
        policy = approval.policy
        escalate = policy is None or policy.on_timeout == OnTimeout.ESCALATE
        next_role = (
            role_above(approval.approver_role or Role.LEAD) if escalate and not approval.approver_group_id else None
        )
        approvers = find_approvers(next_role) if next_role else []
        if next_role and approvers and action.status == ActionStatus.PENDING_APPROVAL:
            new = request_approval(action, policy, level=approval.level + 1, escalated_from=approval, role=next_role)
            record_audit(
                "approval.escalated",
                target=approval,
                actor="scheduler",
                details={"to_role": next_role, "new_approval": new.pk, "level": new.level},
            )
            notice = build_escalation_notice(action, approvers, level=new.level, reason="An approval timed out.")
            stored = outbox.store_email(
                notice, message_id=outbox.message_id_for(action.pk, f"approval-escalation-{new.pk}")
            )
            outbox.deliver_soon(stored)
            return "escalated"
        Approval.objects.filter(pk=approval.pk).update(status=ApprovalStatus.EXPIRED)
        why = "nobody above to escalate to" if escalate else "the policy rejects at the timeout"
        record_audit(
            "approval.expired",
            target=approval,
            actor="scheduler",
            details={"expires_at": approval.expires_at.isoformat(), "policy": str(policy or ""), "reason": why},
        )
        still_waiting = action.approvals.filter(status=ApprovalStatus.PENDING).exists()
        if action.status == ActionStatus.PENDING_APPROVAL and not still_waiting:
            # Expired is how the action is rejected for want of a decision. Decided
            # or cancelled meanwhile: that outcome stands.
            try:
                transition_action(action, ActionStatus.EXPIRED, actor="scheduler", reason=f"approval timed out; {why}")
            except TransitionConflict:
                return "expired"
            approval.refresh_from_db()
            _notify_requester(approval, ApprovalStatus.EXPIRED, decided_by="nobody in time")
        return "expired"


def deadline_passed(now: datetime | None = None):
    now = now or timezone.now()
    return Approval.objects.filter(status=ApprovalStatus.PENDING, expires_at__lte=now)
