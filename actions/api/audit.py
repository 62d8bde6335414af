"""/api/v1/audit/: the audit trail, read only (it is append-only; PUT, PATCH and DELETE answer 405).

Only owners see it (access.audit_for): it names everyone and everything.
"""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import DateTimeRangeFilter, IdFilter
from actions.api.viewsets import VisibleViewSet
from actions.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    """One recorded event: who did what, when, to which object (secrets already masked)."""

    actor = serializers.IntegerField(source="actor_id", read_only=True, allow_null=True, help_text="The user's id.")
    actor_label = serializers.CharField(read_only=True, help_text='Who acted: a username, or "worker", "system"...')
    target_type = serializers.SerializerMethodField(help_text='The kind of object, as "app_label.model".')

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "created_at",
            "event",
            "actor",
            "actor_label",
            "target_type",
            "target_id",
            "target_repr",
            "details",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_target_type(self, entry: AuditEntry) -> str | None:
        kind = entry.target_type
        return f"{kind.app_label}.{kind.model}" if kind else None


class AuditFilter(django_filters.FilterSet):
    event = django_filters.CharFilter(help_text='The event, e.g. "action.approved".')
    actor = django_filters.CharFilter(field_name="actor_label", lookup_expr="iexact", help_text="Who acted.")
    actor_id = IdFilter(help_text="The id of the user who acted.")
    target_type = django_filters.CharFilter(method="filter_target_type", help_text='As "app_label.model".')
    target_id = django_filters.CharFilter()
    created_at = DateTimeRangeFilter(
        help_text="Recorded at or after created_at_after and at or before created_at_before (ISO 8601)."
    )

    class Meta:
        model = AuditEntry
        fields = ["event", "actor", "actor_id", "target_type", "target_id", "created_at"]

    def filter_target_type(self, queryset: QuerySet[AuditEntry], name: str, value: str) -> QuerySet[AuditEntry]:
        app_label, _, model = value.lower().partition(".")
        return queryset.filter(target_type__app_label=app_label, target_type__model=model)


@extend_schema_view(
    list=extend_schema(summary="The audit trail, newest first"),
    retrieve=extend_schema(summary="One audit entry"),
)
class AuditViewSet(VisibleViewSet):
    visible = staticmethod(access.audit_for)
    serializer_class = AuditEntrySerializer
    filterset_class = AuditFilter
    search_fields = ["event", "actor_label", "target_repr"]
    ordering_fields = ["created_at"]
    ordering = ["-created_at"]

    def shape(self, queryset: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        return queryset.select_related("target_type")


router = SimpleRouter()
router.register("audit", AuditViewSet, basename="audit")
urlpatterns = router.urls
