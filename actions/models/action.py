"""An action proposed from an email: what to do, its state, and what running it did."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ActionType(models.TextChoices):
    SEND_REPLY = "send_reply", "Send reply"
    FORWARD_EMAIL = "forward_email", "Forward email"
    CREATE_TASK = "create_task", "Create task"
    SCHEDULE_MEETING = "schedule_meeting", "Schedule meeting"
    SET_REMINDER = "set_reminder", "Set reminder"
    ARCHIVE_EMAIL = "archive_email", "Archive email"
    UPLOAD_FILE = "upload_file", "Upload file"
    DELEGATE_TASK = "delegate_task", "Delegate task"
    MARK_COMPLETE = "mark_complete", "Mark complete"
    FOLLOW_UP = "follow_up", "Follow up"
    APPROVE_REQUEST = "approve_request", "Answer approval request"
    ESCALATE_ISSUE = "escalate_issue", "Escalate issue"


class ActionStatus(models.TextChoices):
    """The states of an action; the allowed moves between them are in actions.transitions."""

    PROPOSED = "proposed", "Proposed"
    PENDING_APPROVAL = "pending_approval", "Pending approval"
    APPROVED = "approved", "Approved"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed (will retry)"
    DEAD = "dead", "Dead (gave up)"
    UNDONE = "undone", "Undone"


class Priority(models.IntegerChoices):
    # Integers, so that "urgent first" is a plain ORDER BY.
    LOW = 10, "Low"
    NORMAL = 20, "Normal"
    HIGH = 30, "High"
    URGENT = 40, "Urgent"


class ActionSource(models.TextChoices):
    AI = "ai", "AI analysis"
    RULE = "rule", "Local rule"
    PERSON = "person", "Person"
    API = "api", "API"


class Action(models.Model):
    """One thing to do because of an email.

    The status column is the truth the workers go by. Change it only through
    actions.transitions.transition_action, which checks the move against the
    table of allowed transitions and audits it; the admin shows it read-only.
    """

    type = models.CharField(max_length=32, choices=ActionType.choices)
    status = models.CharField(max_length=20, choices=ActionStatus.choices, default=ActionStatus.PROPOSED)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    params = models.JSONField("parameters", default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="What the analysis knew when it proposed this.")
    confidence = models.FloatField(null=True, blank=True, help_text="0 to 1, from the analysis.")
    rationale = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=ActionSource.choices, default=ActionSource.PERSON)
    idempotency_key = models.CharField(max_length=128, unique=True)

    email = models.ForeignKey("actions.Email", null=True, blank=True, on_delete=models.PROTECT, related_name="actions")
    run = models.ForeignKey(
        "actions.ProcessingRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    assignee = models.ForeignKey(
        "teams.TeamMember",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_actions",
        help_text="The member this action gives work to (task owner, delegate, escalation contact).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    attempts = models.PositiveIntegerField(default=0)
    scheduled_for = models.DateTimeField(null=True, blank=True, help_text="Do not run before this time.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a failed action is tried again.")
    lease_expires_at = models.DateTimeField(null=True, blank=True, help_text="A running action's worker lease.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its id was last put on the queue.")
    result = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)
    undo_data = models.JSONField(default=dict, blank=True, help_text="What undoing this action needs.")

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The admin's filters and its default ordering.
            models.Index(fields=["status", "-created_at"], name="action_status_created"),
            models.Index(fields=["type", "-created_at"], name="action_type_created"),
            models.Index(fields=["-created_at", "-id"], name="action_created"),
            # The worker's claim and the sweeper: the next due action per lane.
            models.Index(fields=["status", "-priority", "next_attempt_at"], name="action_claim"),
            # Workload: a member's open actions.
            models.Index(fields=["assignee", "status"], name="action_assignee_status"),
            # Rate limits: actions of a type started in the last hour.
            models.Index(fields=["type", "started_at"], name="action_type_started"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confidence__isnull=True) | models.Q(confidence__gte=0, confidence__lte=1),
                name="action_confidence_0_to_1",
            ),
            models.CheckConstraint(condition=models.Q(type__in=ActionType.values), name="action_type_known"),
            models.CheckConstraint(condition=models.Q(status__in=ActionStatus.values), name="action_status_known"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_type_display()}"

    @property
    def is_terminal(self) -> bool:
        from actions.transitions import TRANSITIONS

        return not TRANSITIONS[ActionStatus(self.status)]
