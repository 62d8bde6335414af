"""The audit trail in the admin: read only, and shown on every object's page."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from actions.admin_utils import ReadOnlyAdminMixin, admin_link, pretty_json, when
from actions.models import AuditEntry


def audit_table(obj):
    """The object's audit entries, oldest first, as an HTML table."""
    entries = AuditEntry.objects.for_object(obj).order_by("created_at", "id")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((when(entry.created_at), entry.actor_label, entry.event, pretty_json(entry.details)) for entry in entries),
    )
    if not rows:
        return "No entries yet."
    return format_html("<table><tr><th>When</th><th>Who</th><th>Event</th><th>Details</th></tr>{}</table>", rows)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "event", "target_type", "target_link"]
    list_filter = ["event", ("target_type", admin.RelatedOnlyFieldListFilter), "created_at"]
    list_select_related = ["target_type"]
    # The trail only grows; spare every page a second count of all of it.
    show_full_result_count = False
    search_fields = ["actor_label", "event", "target_repr", "target_id"]
    date_hierarchy = "created_at"
    readonly_fields = ["details_pretty"]
    exclude = ["details"]

    @admin.display(description="object")
    def target_link(self, obj: AuditEntry):
        if obj.target_type is None:
            return "-"
        model = obj.target_type.model_class()
        if model is None:
            return obj.target_repr
        # A stand-in with only the pk: enough to link, without loading the target.
        stand_in = model(pk=obj.target_id)
        return admin_link(stand_in, obj.target_repr or f"{model._meta.verbose_name} #{obj.target_id}")

    @admin.display(description="details")
    def details_pretty(self, obj: AuditEntry):
        return pretty_json(obj.details)
