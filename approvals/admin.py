"""Admin for approval policies and approvals."""

from __future__ import annotations

from django.contrib import admin
from guardian.shortcuts import get_objects_for_user

from actions.admin_utils import AuditedAdminMixin, ReadOnlyAdminMixin, ReadOnlyInline, admin_link
from approvals.models import Approval, ApprovalPolicy


def approvals_visible_to(user, queryset):
    """The approvals in `queryset` that `user` may see: all for a superuser, else those they may decide."""
    if user.is_superuser:
        return queryset
    # Only the approvals this person was asked to decide; a global
    # permission must not widen that to every approval.
    return get_objects_for_user(user, "approvals.decide_approval", klass=queryset, accept_global_perms=False)


class ApprovalInline(ReadOnlyInline):
    """An action's approvals, limited like the approval list to those the viewer may see."""

    model = Approval
    fields = ["status", "level", "approver_role", "expires_at", "decided_by", "decided_at", "comment"]
    ordering = ["requested_at"]

    def get_queryset(self, request):
        return approvals_visible_to(request.user, super().get_queryset(request).select_related("decided_by"))


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = [
        "name",
        "action_type",
        "condition",
        "threshold",
        "requires_approval",
        "approver_role",
        "approver_group",
        "approvals_required",
        "timeout",
        "on_timeout",
        "active",
    ]
    list_filter = ["action_type", "condition", "requires_approval", "on_timeout", "active"]
    list_select_related = ["approver_group"]
    search_fields = ["name"]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "action_link",
        "status",
        "level",
        "approver_role",
        "requested_at",
        "expires_at",
        "decided_by",
    ]
    list_filter = ["status", "approver_role", "requested_at"]
    list_select_related = ["action", "decided_by"]
    search_fields = ["action__email__subject", "comment"]
    date_hierarchy = "requested_at"

    def get_queryset(self, request):
        return approvals_visible_to(request.user, super().get_queryset(request))

    @admin.display(description="action", ordering="action__created_at")
    def action_link(self, obj: Approval):
        return admin_link(obj.action)
