"""Admin for the data of the local backends."""

from __future__ import annotations

from django.contrib import admin

from actions.admin_utils import AuditedAdminMixin, ReadOnlyAdminMixin, admin_link
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
