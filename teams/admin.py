"""Admin for the team directory."""

from __future__ import annotations

from django.contrib import admin

from teams.models import TeamMember


@admin.register(TeamMember)
class TeamMemberAdmin(admin.ModelAdmin):
    list_display = ["__str__", "email", "role", "manager", "availability", "capacity", "timezone", "active"]
    list_filter = ["role", "availability", "active", "timezone"]
    list_select_related = ["user", "manager__user"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "user__email"]
    autocomplete_fields = ["user", "manager"]
    fieldsets = [
        (None, {"fields": ["user", "role", "manager", "active"]}),
        ("Skills and load", {"fields": ["skills", "capacity"]}),
        ("Time", {"fields": ["timezone", "work_start", "work_end", "availability", "away_until"]}),
    ]

    @admin.display(description="email", ordering="user__email")
    def email(self, obj: TeamMember) -> str:
        return obj.user.email
