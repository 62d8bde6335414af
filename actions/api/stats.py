"""GET /api/v1/stats/: the figures of the dashboard (actions.stats.snapshot) for programs."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from actions.api.access import has_global
from actions.api.openapi import MailroomAutoSchema
from actions.stats import snapshot

# The figures cover every action, so they are for those who may view every action.
PERMISSION = "actions.view_action"


class StatsCountSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The status or type, as the API names it.")
    label = serializers.CharField(help_text="The same, for people.")
    count = serializers.IntegerField()


class StatsActionsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = StatsCountSerializer(many=True, help_text="Every status, zeros included, in the order of their life.")
    by_type = StatsCountSerializer(many=True, help_text="Every action type, zeros included.")


class StatsOutcomesSerializer(serializers.Serializer):
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField(help_text="Failed (waiting to be retried) or dead (given up).")
    success_rate = serializers.FloatField(allow_null=True, help_text="0 to 1; null when nothing ended.")
    failure_rate = serializers.FloatField(allow_null=True, help_text="0 to 1; null when nothing ended.")


class StatsOutcomeWindowsSerializer(serializers.Serializer):
    last_24h = StatsOutcomesSerializer(help_text="Actions whose status last changed in the last 24 hours.")
    all_time = StatsOutcomesSerializer()


class StatsTimingSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="How many finished runs or actions the percentiles are taken over.")
    median = serializers.FloatField(allow_null=True, help_text="Seconds; null without any.")
    p95 = serializers.FloatField(allow_null=True, help_text="95th percentile, seconds; null without any.")


class StatsTimingsSerializer(serializers.Serializer):
    runs = StatsTimingSerializer(help_text="Processing runs that succeeded or failed, from start to finish.")
    actions = StatsTimingSerializer(help_text="Actions that succeeded, failed or died, from a claim to the end.")


class StatsApprovalsSerializer(serializers.Serializer):
    waiting = serializers.IntegerField(help_text="Approvals waiting for a decision.")
    oldest_requested_at = serializers.DateTimeField(allow_null=True)
    oldest_age = serializers.FloatField(allow_null=True, help_text="Seconds the oldest has waited.")
    median_age = serializers.FloatField(allow_null=True, help_text="Median seconds waited.")


class StatsCircuitSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The integration (capability).")
    state = serializers.ChoiceField(choices=["closed", "open", "half_open"])


class StatsSnapshotSerializer(serializers.Serializer):
    """Every figure of the dashboard at one moment; see actions.stats.snapshot."""

    generated_at = serializers.DateTimeField()
    actions = StatsActionsSerializer()
    outcomes = StatsOutcomeWindowsSerializer()
    queue_depth = serializers.DictField(
        child=serializers.IntegerField(), help_text='Queued actions per worker lane: {"normal": n, "urgent": m}.'
    )
    processing_times = StatsTimingsSerializer(help_text="Over the 1000 most recently finished of each.")
    approvals = StatsApprovalsSerializer()
    circuits = StatsCircuitSerializer(many=True, help_text="Each integration's circuit breaker.")


class SeesEveryAction(permissions.BasePermission):
    message = "The figures cover every action: they need the permission to view all actions."

    def has_permission(self, request: Request, view) -> bool:
        return has_global(request.user, PERMISSION)


class StatsView(APIView):
    """The dashboard's figures, as JSON."""

    schema = MailroomAutoSchema()
    permission_classes = [permissions.IsAuthenticated, SeesEveryAction]

    @extend_schema(
        operation_id="stats_retrieve",
        summary="The dashboard's figures",
        description="Actions by status and type, success and failure rates, queue depth per lane, "
        "processing times (median and 95th percentile), approvals waiting and their age, and the "
        "integrations' circuit states. Needs the permission to view every action.",
        responses=StatsSnapshotSerializer,
        tags=["stats"],
    )
    def get(self, request: Request) -> Response:
        return Response(StatsSnapshotSerializer(snapshot()).data)


urlpatterns = [path("stats/", StatsView.as_view(), name="stats")]
