"""Admin for the data of the local backends."""

from __future__ import annotations

from django.contrib import admin

from actions.admin_utils import AuditedAdminMixin
from integrations.models import LocalTask


@admin.register(LocalTask)
class LocalTaskAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["title", "status", "priority", "assignee", "due_at", "created_at"]
    list_filter = ["status", "priority", "created_at"]
    list_select_related = ["assignee__user"]
    search_fields = ["title", "description", "assignee__user__email"]
    date_hierarchy = "created_at"
    raw_id_fields = ["email", "action"]
    autocomplete_fields = ["assignee"]
