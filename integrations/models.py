"""Data the embedded (local) backends keep in Mailroom's own database."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db import models


class TaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class LocalTask(models.Model):
    """A task in the local task store, the default task backend (Jira and Asana are the others)."""

    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    priority = models.PositiveSmallIntegerField(default=20, help_text="As Action.priority: 10 low to 40 urgent.")
    assignee = models.ForeignKey(
        "teams.TeamMember", null=True, blank=True, on_delete=models.SET_NULL, related_name="local_tasks"
    )
    email = models.ForeignKey("actions.Email", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The action that created it: creating twice for one action returns the same task.
    action = models.OneToOneField(
        "actions.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="local_task"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Where the task really lives when the task backend is Jira or Asana: this
    # row is Mailroom's record of it (assignee, email, status), the issue or
    # task there is what people work in.
    backend = models.CharField(max_length=16, default="local", help_text="local, jira or asana.")
    external_id = models.CharField(max_length=64, blank=True, help_text="The Jira issue key or Asana task gid.")
    external_url = models.URLField(max_length=500, blank=True)

    class Meta:
        ordering = ["status", "due_at", "-created_at"]
        indexes = [models.Index(fields=["assignee", "status"], name="localtask_assignee_status")]

    def __str__(self) -> str:
        return self.title


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    HELD = "held", "Held for a person"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class OutboxMessage(models.Model):
    """One outgoing message. Its Message-ID is unique: a second delivery of the same message is refused.

    Delivery marks the row `sending` before the send call and `sent` after,
    so a crash can only leave a message ambiguous for the length of that call.
    """

    message_id = models.CharField("Message-ID", max_length=255, unique=True)
    action = models.ForeignKey(
        "actions.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="outbox_messages"
    )
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    from_email = models.CharField(max_length=320)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField("HTML body", blank=True)
    headers = models.JSONField(default=dict, blank=True)
    # Extra MIME parts: [{"filename", "content_type", "content" (base64)}], e.g. a text/calendar invite.
    attachments = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sending_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "sending_started_at"], name="outbox_status_sending")]

    def __str__(self) -> str:
        return f"{self.subject or '(no subject)'} to {', '.join(self.to)}"


class ReminderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"


class LocalReminder(models.Model):
    """A reminder for a person at a time, kept locally (CalDAV VTODO where configured)."""

    recipient = models.EmailField()
    text = models.CharField(max_length=500)
    remind_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReminderStatus.choices, default=ReminderStatus.PENDING)
    email = models.ForeignKey("actions.Email", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.OneToOneField(
        "actions.Action", null=True, blank=True, on_delete=models.SET_NULL, related_name="local_reminder"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["remind_at"]
        indexes = [models.Index(fields=["status", "remind_at"], name="reminder_due")]

    def __str__(self) -> str:
        return f"{self.text} for {self.recipient} at {self.remind_at:%Y-%m-%d %H:%M}"


class CircuitState(models.TextChoices):
    CLOSED = "closed", "Closed (working)"
    OPEN = "open", "Open (resting)"
    HALF_OPEN = "half_open", "Half open (trying)"


class Circuit(models.Model):
    """The circuit breaker of one integration, shared by every worker through the database."""

    name = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=CircuitState.choices, default=CircuitState.CLOSED)
    failures = models.PositiveIntegerField(default=0, help_text="Transient failures in a row.")
    opened_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.get_state_display()}"


class CallOutcome(models.TextChoices):
    SUCCESS = "success", "Succeeded"
    FAILURE = "failure", "Failed (transient)"
    REFUSED = "refused", "Refused (permanent)"


class IntegrationCalls(models.Model):
    """How many calls the executor made to one integration with one outcome, ever: /metrics reads these.

    Counted in the database, not in a process, so every worker adds to the
    same figure and a restart loses nothing.
    """

    capability = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16, choices=CallOutcome.choices)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "integration calls"
        constraints = [
            models.UniqueConstraint(fields=["capability", "outcome"], name="integrationcalls_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.capability} {self.outcome}: {self.count}"


class MailboxCursor(models.Model):
    """How far IMAP polling has read one folder of one mailbox.

    UIDs only mean something within one UIDVALIDITY: when the server changes
    it, the folder is read again from the start and Message-IDs keep the
    messages already stored from being stored twice.
    """

    mailbox = models.CharField(max_length=254, help_text="The mailbox's name in Mailroom (usually its address).")
    folder = models.CharField(max_length=255, default="INBOX")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0, help_text="The highest UID already ingested.")
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mailbox", "folder"], name="mailboxcursor_unique")]

    def __str__(self) -> str:
        return f"{self.mailbox}/{self.folder} after UID {self.last_uid}"


class RuleMatch(models.TextChoices):
    ALL = "all", "All conditions (AND)"
    ANY = "any", "Any condition (OR)"


class AnalysisRule(models.Model):
    """A local rule: when an email matches its conditions, categorise it and propose an action.

    Rules are tried in order; every matching rule adds its proposal, and a
    rule marked "stop" ends the list for that email.
    """

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=100, help_text="Lower runs first.")
    match = models.CharField(max_length=8, choices=RuleMatch.choices, default=RuleMatch.ALL)
    category = models.CharField(max_length=64, blank=True, help_text="Category to give a matching email.")
    priority = models.PositiveSmallIntegerField(
        null=True, blank=True, choices=[(10, "Low"), (20, "Normal"), (30, "High"), (40, "Urgent")]
    )
    action_type = models.CharField(max_length=32, blank=True, help_text="Action to propose; empty to only categorise.")
    action_params = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Parameters of the action. Text may use {subject}, {from}, {from_name} and {mailbox}, "
            'e.g. {"title": "{subject}"}.'
        ),
    )
    confidence = models.FloatField(default=0.8, help_text="0 to 1; the thresholds decide what runs at once.")
    rationale = models.CharField(max_length=300, blank=True)
    stop = models.BooleanField(default=False, help_text="Try no further rules after this one matches.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Refuse a rule that could not work; each message names its field."""
        if problems := self.problems():
            raise ValidationError(problems)

    def problems(self) -> dict[str, str]:
        """What is wrong with the rule's own fields (not its conditions), by field; empty when nothing is.

        The local backend skips a rule with problems, for rules saved past clean().
        """
        # Imported here: the handlers and the backend import these models.
        from actions.handlers import validation_errors
        from actions.models import ActionType
        from integrations.llm.base import CATEGORIES
        from integrations.llm.local import SAMPLE_VALUES, fill_placeholders

        problems = {}
        if self.category and self.category not in CATEGORIES:
            problems["category"] = f"{self.category!r} is not a category; use one of {', '.join(CATEGORIES)}."
        if self.confidence is not None and not 0 <= self.confidence <= 1:
            problems["confidence"] = "The confidence is a number from 0 to 1."
        if not isinstance(self.action_params, dict):
            problems["action_params"] = 'The parameters are a JSON object, such as {"title": "{subject}"}.'
        elif self.action_type and self.action_type not in ActionType.values:
            problems["action_type"] = (
                f"{self.action_type!r} is not an action type; use one of {', '.join(ActionType.values)}."
            )
        elif self.action_type:
            # Placeholders stand for text: check the parameters as they will be once filled in.
            refused = validation_errors(self.action_type, fill_placeholders(self.action_params, SAMPLE_VALUES))
            if refused:
                problems["action_params"] = "; ".join(f"{field}: {why}" for field, why in refused)
        elif self.action_params:
            problems["action_params"] = "Parameters need an action type: choose one, or empty the parameters."
        return problems


class ConditionField(models.TextChoices):
    FROM = "from", "From (name and address)"
    TO = "to", "To and Cc"
    SUBJECT = "subject", "Subject"
    BODY = "body", "Body (plain text)"
    HEADER = "header", "Header (name below)"
    ANY = "any", "Subject or body"


class ConditionOperator(models.TextChoices):
    CONTAINS = "contains", "contains"
    EQUALS = "equals", "equals"
    STARTS_WITH = "startswith", "starts with"
    ENDS_WITH = "endswith", "ends with"
    REGEX = "regex", "matches regular expression"
    EXISTS = "exists", "is present"


class RuleCondition(models.Model):
    """One test of a rule. Text comparisons ignore case."""

    rule = models.ForeignKey(AnalysisRule, on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(max_length=16, choices=ConditionField.choices)
    header = models.CharField(max_length=100, blank=True, help_text="The header's name, for the header field.")
    operator = models.CharField(max_length=16, choices=ConditionOperator.choices, default=ConditionOperator.CONTAINS)
    value = models.CharField(max_length=500, blank=True)
    negate = models.BooleanField(default=False, help_text="Match when the test fails.")

    class Meta:
        ordering = ["rule_id", "id"]

    def __str__(self) -> str:
        subject = f"header {self.header}" if self.field == ConditionField.HEADER else self.get_field_display()
        return f"{'not ' if self.negate else ''}{subject} {self.get_operator_display()} {self.value!r}"

    def clean(self) -> None:
        """Refuse a test that could not work; each message names its field."""
        if problems := self.problems():
            raise ValidationError(problems)

    def problems(self) -> dict[str, str]:
        """What is wrong with the test, by field; empty when nothing is. The local backend skips its rule if any."""
        problems = {}
        if self.field not in ConditionField.values:
            problems["field"] = f"{self.field!r} is not a field a rule can test."
        elif self.field == ConditionField.HEADER and not self.header.strip():
            problems["header"] = "Name the header to test, such as List-Id or X-Priority."
        elif self.field != ConditionField.HEADER and self.header.strip():
            problems["header"] = "Only the Header field reads a header name: empty it, or choose Header."
        if self.operator not in ConditionOperator.values:
            problems["operator"] = f"{self.operator!r} is not an operator."
        elif self.operator == ConditionOperator.REGEX:
            try:
                re.compile(self.value)
            except re.error as exc:
                problems["value"] = f"This regular expression does not compile: {exc}."
        elif self.operator != ConditionOperator.EXISTS and not self.value:
            problems["value"] = 'Give a value to compare with (only "is present" needs none).'
        return problems
