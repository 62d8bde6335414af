"""Approval policies and the approvals they ask for."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from actions.models import ActionType
from teams.models import Role


class Condition(models.TextChoices):
    ALWAYS = "always", "Always"
    EXTERNAL_RECIPIENT = "external_recipient", "A recipient is outside the company"
    AMOUNT_ABOVE = "amount_above", "The amount is above the threshold"
    CONFIDENCE_BELOW = "confidence_below", "The confidence is below the threshold"
    UNKNOWN_SENDER = "unknown_sender", "The sender is not known"


class OnTimeout(models.TextChoices):
    ESCALATE = "escalate", "Escalate to the next approver up the chain"
    REJECT = "reject", "Reject"


class ApprovalPolicy(models.Model):
    """Whether an action type (under a condition) needs approval, by whom, and for how long."""

    name = models.CharField(max_length=120, unique=True)
    action_type = models.CharField(
        max_length=32, choices=ActionType.choices, blank=True, help_text="Blank: every action type."
    )
    condition = models.CharField(max_length=24, choices=Condition.choices, default=Condition.ALWAYS)
    threshold = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text="The amount or confidence the condition compares with.",
    )
    requires_approval = models.BooleanField(default=True)
    approver_role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    approver_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    timeout = models.DurationField(default=timedelta(hours=48))
    on_timeout = models.CharField(max_length=16, choices=OnTimeout.choices, default=OnTimeout.ESCALATE)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["action_type", "name"]
        verbose_name_plural = "approval policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(approvals_required__gte=1), name="policy_needs_one_approval"),
            models.CheckConstraint(
                condition=models.Q(
                    condition__in=[Condition.ALWAYS, Condition.EXTERNAL_RECIPIENT, Condition.UNKNOWN_SENDER]
                )
                | models.Q(threshold__isnull=False),
                name="policy_threshold_when_compared",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    ESCALATED = "escalated", "Escalated"


class Approval(models.Model):
    """A request for a person to decide one action. Decided once."""

    action = models.ForeignKey("actions.Action", on_delete=models.CASCADE, related_name="approvals")
    policy = models.ForeignKey(
        ApprovalPolicy, null=True, blank=True, on_delete=models.SET_NULL, related_name="approvals"
    )
    status = models.CharField(max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING)
    approver_role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    approver_group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    level = models.PositiveSmallIntegerField(default=1, help_text="1 for the first approver; one more per escalation.")
    escalated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="escalated_to"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True)
    approvals_required = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ["-requested_at", "-id"]
        permissions = [("decide_approval", "Can decide this approval")]
        indexes = [
            models.Index(fields=["status", "-requested_at"], name="approval_status_requested"),
            # expire_approvals: pending approvals past their deadline.
            models.Index(fields=["status", "expires_at"], name="approval_status_expires"),
        ]

    def __str__(self) -> str:
        return f"Approval #{self.pk} of action #{self.action_id}"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ApprovalVote(models.Model):
    """One approver's decision on one approval. An approver decides once."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="votes")
    voter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    via = models.CharField(max_length=16, help_text="admin, email link or api")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["approval_id", "created_at"]
        constraints = [models.UniqueConstraint(fields=["approval", "voter"], name="vote_once_per_approver")]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.voter} on approval #{self.approval_id}"


class ApprovalRecipient(models.Model):
    """Who was asked to decide an approval (and mailed a link): the people guardian lets decide it."""

    approval = models.ForeignKey(Approval, on_delete=models.CASCADE, related_name="recipients")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["approval", "user"], name="recipient_once_per_approval")]

    def __str__(self) -> str:
        return f"{self.user} for approval #{self.approval_id}"


class ConfidenceThreshold(models.Model):
    """How sure the analysis must be for an action type: at or above `auto`, run (if policies allow);
    below `suggest`, only suggest; in between, ask for approval."""

    action_type = models.CharField(max_length=32, choices=ActionType.choices, unique=True)
    auto = models.FloatField(help_text="At or above: run without asking, unless a policy asks.")
    suggest = models.FloatField(help_text="Below: keep as a suggestion only.")

    class Meta:
        ordering = ["action_type"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(suggest__gte=0, suggest__lte=models.F("auto"), auto__lte=1),
                name="threshold_0_suggest_auto_1",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_action_type_display()}: auto ≥ {self.auto}, suggest < {self.suggest}"


# Direct foreign-key permission tables: guardian's generic ones store the
# object id as text, which makes every permission lookup a cast and a scan.
class ApprovalUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Approval, on_delete=models.CASCADE)


class ApprovalGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Approval, on_delete=models.CASCADE)
