"""Admin for the data of the local backends."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from actions.admin_utils import AuditedAdminMixin, ReadOnlyAdminMixin, admin_link
from actions.models import ActionType
from integrations import outbox
from integrations.llm.base import CATEGORIES
from integrations.models import (
    AnalysisRule,
    Circuit,
    LocalReminder,
    LocalTask,
    MailboxCursor,
    OutboxMessage,
    RuleCondition,
)


@admin.register(LocalTask)
class LocalTaskAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["title", "status", "priority", "assignee", "due_at", "created_at"]
    list_filter = ["status", "priority", "created_at"]
    list_select_related = ["assignee__user"]
    search_fields = ["title", "description", "assignee__user__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["email", "action"]
    autocomplete_fields = ["assignee"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every message Mailroom sent or will send; in the embedded default, the place to read them."""

    list_display = ["subject", "recipients", "status", "attempts", "created_at", "sent_at", "action_link"]
    list_filter = ["status", "created_at"]
    list_select_related = ["action"]
    search_fields = ["subject", "message_id", "text_body"]
    date_hierarchy = "created_at"
    exclude = ["attachments"]
    actions = ["release_messages", "cancel_messages"]

    def has_change_permission(self, request, obj=None) -> bool:
        # Viewing only, but the actions below need the change permission to be offered.
        return request.user.has_perm("integrations.change_outboxmessage") and obj is None

    @admin.action(description="Send held messages after all", permissions=["change"])
    def release_messages(self, request, queryset) -> None:
        released = sum(outbox.release(message) for message in queryset)
        self.message_user(request, f"Released {released} held message(s); the sweeper sends them within a minute.")

    @admin.action(description="Cancel messages that have not left", permissions=["change"])
    def cancel_messages(self, request, queryset) -> None:
        cancelled = sum(outbox.cancel(message) for message in queryset)
        self.message_user(request, f"Cancelled {cancelled} message(s).")

    @admin.display(description="to")
    def recipients(self, obj: OutboxMessage) -> str:
        return ", ".join(obj.to + obj.cc)

    @admin.display(description="action")
    def action_link(self, obj: OutboxMessage):
        return admin_link(obj.action)


@admin.register(LocalReminder)
class LocalReminderAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["text", "recipient", "remind_at", "status", "sent_at"]
    list_filter = ["status", "remind_at"]
    search_fields = ["text", "recipient"]
    date_hierarchy = "remind_at"
    raw_id_fields = ["email", "action"]


@admin.register(Circuit)
class CircuitAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Each integration's circuit breaker, as the workers see it."""

    list_display = ["name", "state", "failures", "opened_until", "changed_at", "last_error"]
    list_filter = ["state"]
    search_fields = ["name"]


class RuleConditionForm(forms.ModelForm):
    class Meta:
        model = RuleCondition
        fields = ["field", "header", "operator", "value", "negate"]
        help_texts = {
            "field": "What to read: From is the name and the address; To covers Cc; Any is the subject or the body.",
            "header": "Only for Header: its name, e.g. List-Id, X-Priority, Auto-Submitted.",
            "operator": 'Comparisons ignore case. "Is present" tests that the header is there, whatever its value.',
            "value": "A regular expression is searched anywhere in the text, e.g. \\b(refund|chargeback)\\b.",
            "negate": "Tick to match when the test fails (e.g. From does not end with @acme.example).",
        }


class RuleConditionInline(admin.TabularInline):
    model = RuleCondition
    form = RuleConditionForm
    extra = 1


class AnalysisRuleForm(forms.ModelForm):
    # Choices here, not on the model: the lists live in code and change without a migration.
    category = forms.ChoiceField(
        choices=[("", "(leave to the analysis)"), *((name, name) for name in CATEGORIES)],
        required=False,
        help_text="The category a matching email gets. The first matching rule that sets one wins.",
    )
    action_type = forms.ChoiceField(
        choices=[("", "(none: only categorise)"), *ActionType.choices],
        required=False,
        help_text="The action to propose. The approval policies and confidence thresholds still decide "
        "whether it runs at once, waits for an approver, or stays a suggestion.",
    )

    class Meta:
        model = AnalysisRule
        fields = [
            "name",
            "description",
            "active",
            "order",
            "match",
            "category",
            "priority",
            "stop",
            "action_type",
            "action_params",
            "confidence",
            "rationale",
        ]
        help_texts = {
            "order": "Rules are tried from the lowest number up.",
            "match": "All: every condition must hold. Any: one is enough. A rule without conditions matches "
            "every email.",
            "priority": "The priority a matching email gets; the first matching rule that sets one wins.",
            "action_params": "The action's parameters as JSON, checked when you save. Text may use {subject}, "
            '{from} (the address), {from_name} and {mailbox}, e.g. {"title": "Refund: {subject}"} for '
            'create_task, or {"skills": ["billing"]} for delegate_task.',
            "confidence": "0 to 1: how sure the rule is. The thresholds decide what runs at once.",
            "rationale": "Why the action is proposed, for the approver and the audit trail. Empty: "
            "\"Rule '<name>' matched\".",
            "stop": "Try no further rules after this one matches. The built-in heuristics still fill the category "
            "and priority if no rule set them.",
        }


@admin.register(AnalysisRule)
class AnalysisRuleAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """The local backend's rules: tried in order before the built-in heuristics."""

    form = AnalysisRuleForm
    inlines = [RuleConditionInline]
    list_display = ["name", "order", "active", "match", "category", "action_type", "confidence"]
    list_editable = ["active", "order"]
    list_filter = ["active", "category", "action_type"]
    search_fields = ["name"]
    fieldsets = [
        (
            None,
            {
                "fields": ["name", "description", "active", "order", "match"],
                "description": "The local analysis tries every active rule in order. A rule matches when its "
                "conditions (below) hold; a matching rule sets the category and priority and proposes its "
                "action. When no rule proposes an action, the built-in heuristics propose theirs. Rules "
                "apply to the next emails analysed; those already analysed keep their proposals.",
            },
        ),
        ("What a matching email gets", {"fields": ["category", "priority", "stop"]}),
        ("The action it proposes", {"fields": ["action_type", "action_params", "confidence", "rationale"]}),
    ]


@admin.register(MailboxCursor)
class MailboxCursorAdmin(admin.ModelAdmin):
    """How far IMAP polling has read each folder, and what it had to skip."""

    list_display = ["mailbox", "folder", "uidvalidity", "last_uid", "last_polled_at", "has_errors"]
    readonly_fields = ["mailbox", "folder", "uidvalidity", "last_uid", "last_polled_at", "last_error"]
    actions = ["clear_errors"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="errors", boolean=True)
    def has_errors(self, obj: MailboxCursor) -> bool:
        return bool(obj.last_error)

    @admin.action(description="Clear the recorded errors (after dealing with the skipped messages)")
    def clear_errors(self, request, queryset) -> None:
        cleared = queryset.exclude(last_error="").update(last_error="")
        self.message_user(request, f"Cleared the errors of {cleared} folder(s).", messages.SUCCESS)
