"""Admin for the data of the local backends."""

from __future__ import annotations

from django.contrib import admin

from actions.admin_utils import AuditedAdminMixin, ReadOnlyAdminMixin, admin_link
from integrations import outbox
from integrations.models import Circuit, LocalReminder, LocalTask, OutboxMessage


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
