"""/api/v1/team/: the team directory, read only, for owners and team members (access.team_for).

Members change through the directory file (`import_team`) or the admin.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import IdFilter
from actions.api.viewsets import VisibleViewSet
from teams.assignment import with_workload
from teams.models import Availability, Role, TeamMember


@extend_schema_field({"type": "string", "pattern": r"^\d{2}:\d{2}$", "example": "09:00"})
class ClockTimeField(serializers.TimeField):
    """A time of day as HH:MM, as the directory file writes it (JSON Schema's "time" wants an offset)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(format="%H:%M", **kwargs)


class TeamMemberSerializer(serializers.ModelSerializer):
    """A person on the team: who they are, what they are good at, and how much open work they hold."""

    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="__str__", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)
    manager_name = serializers.CharField(source="manager", read_only=True, allow_null=True, default=None)
    skills = serializers.DictField(child=serializers.IntegerField(min_value=1, max_value=5), read_only=True)
    work_days = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), read_only=True, help_text="0 is Monday."
    )
    work_start = ClockTimeField(read_only=True, help_text="Start of working hours, in their own time zone.")
    work_end = ClockTimeField(read_only=True, help_text="End of working hours; before the start means overnight.")
    workload = serializers.IntegerField(
        source="open_work", read_only=True, help_text="Open actions and open local tasks assigned to them."
    )

    class Meta:
        model = TeamMember
        fields = [
            "id",
            "username",
            "name",
            "email",
            "role",
            "manager",
            "manager_name",
            "skills",
            "timezone",
            "work_start",
            "work_end",
            "work_days",
            "availability",
            "away_until",
            "capacity",
            "workload",
            "active",
        ]
        read_only_fields = fields


class TeamFilter(django_filters.FilterSet):
    role = django_filters.MultipleChoiceFilter(choices=Role.choices)
    availability = django_filters.MultipleChoiceFilter(choices=Availability.choices)
    active = django_filters.BooleanFilter()
    manager = IdFilter(field_name="manager_id", help_text="The id of their manager.")
    skill = django_filters.CharFilter(method="filter_skill", help_text="Members with this skill, at any level.")

    class Meta:
        model = TeamMember
        fields = ["role", "availability", "active", "manager", "skill"]

    def filter_skill(self, queryset: QuerySet[TeamMember], name: str, value: str) -> QuerySet[TeamMember]:
        return queryset.filter(skills__has_key=value)


@extend_schema_view(
    list=extend_schema(summary="The team directory", description="`search` looks in names, usernames and emails."),
    retrieve=extend_schema(summary="One team member"),
)
class TeamViewSet(VisibleViewSet):
    visible = staticmethod(access.team_for)
    serializer_class = TeamMemberSerializer
    filterset_class = TeamFilter
    search_fields = ["user__first_name", "user__last_name", "user__username", "user__email"]
    ordering_fields = ["user__username", "role", "capacity"]
    ordering = ["user__last_name", "user__first_name", "user__username"]

    def shape(self, queryset: QuerySet[TeamMember]) -> QuerySet[TeamMember]:
        return with_workload(queryset.select_related("user", "manager__user"))


router = SimpleRouter()
router.register("team", TeamViewSet, basename="team-member")
urlpatterns = router.urls
