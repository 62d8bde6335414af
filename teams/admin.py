"""Admin for the team directory, and for users with self-promotion closed off."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils.html import format_html, format_html_join

from actions.admin_utils import AuditedAdminMixin
from teams.assignment import RANKED_ACTION_TYPES, choose_assignee, need_for_action
from teams.hierarchy import escalation_chain
from teams.models import TeamMember

User = get_user_model()


@admin.register(TeamMember)
class TeamMemberAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "email", "role", "manager", "availability", "capacity", "timezone", "active"]
    list_filter = ["role", "availability", "active", "timezone"]
    list_select_related = ["user", "manager__user"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]
    autocomplete_fields = ["user", "manager"]
    fieldsets = [
        (None, {"fields": ["user", "role", "manager", "active"]}),
        ("Skills and load", {"fields": ["skills", "capacity"]}),
        ("Time", {"fields": ["timezone", "work_start", "work_end", "work_days", "availability", "away_until"]}),
    ]

    @admin.display(description="email", ordering="user__email")
    def email(self, obj: TeamMember) -> str:
        return obj.user.email


admin.site.unregister(User)


@admin.register(User)
class MailroomUserAdmin(AuditedAdminMixin, UserAdmin):
    """Django's user admin, except that only superusers hand out rights.

    Staff who may edit users can still change names and emails, but not
    anyone's superuser or staff flag, groups or permissions: otherwise they
    could grant themselves the right to decide any approval.
    """

    _rights = ("is_superuser", "is_staff", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += [name for name in self._rights if name not in readonly]
        return readonly


def _ranking_rows(ranking):
    return format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                candidate.member,
                f"{candidate.score:.2f}",
                "yes" if candidate.eligible else "no",
                ", ".join(f"{name} {value:.2f}" for name, value in candidate.scores.items()),
                "; ".join(candidate.reasons),
            )
            for candidate in ranking
        ),
    )


def assignment_table(action):
    """How assignment decides for this action: the ranking with scores and reasons, or the escalation chain."""
    if action.type == "escalate_issue":
        chain = escalation_chain(action.assignee)
        if not chain:
            return "Nobody above to escalate to."
        return format_html_join(" → ", "{} ({})", ((member, member.get_role_display()) for member in chain))
    if action.type not in RANKED_ACTION_TYPES:
        return "-"
    choice = choose_assignee(need_for_action(action))
    return format_html(
        "<p><strong>{}</strong></p><table><tr><th>Member</th><th>Score</th><th>Eligible</th><th>Scores</th>"
        "<th>Reasons</th></tr>{}</table>",
        choice.explanation,
        _ranking_rows(choice.ranking),
    )
