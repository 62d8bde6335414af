"""/api/v1/execution/: the kill switch. Read it; pause or resume all execution.

Pausing and resuming go through actions.executor (pause_execution,
resume_execution), which audit the change, and need the permission
actions.change_executionswitch. The switch is global, so refusing it
discloses nothing: anyone without the permission gets 403, outsiders too.
Reading it is for owners, team members and approvers.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from actions.api import access
from actions.api.openapi import MailroomAutoSchema
from actions.api.serializers import ReasonSerializer
from actions.executor import pause_execution, resume_execution
from actions.models import ExecutionSwitch

CHANGE_SWITCH = "actions.change_executionswitch"


class ExecutionSwitchSerializer(serializers.ModelSerializer):
    """Whether actions may run now, and who last said so, when and why."""

    by = serializers.CharField(
        source="changed_by.username", read_only=True, allow_null=True, default=None, help_text="Who last changed it."
    )

    class Meta:
        model = ExecutionSwitch
        fields = ["paused", "changed_at", "by", "reason"]
        read_only_fields = fields


class ResumedSerializer(ExecutionSwitchSerializer):
    enqueued = serializers.IntegerField(read_only=True, help_text="How many due actions went back to the workers.")

    class Meta(ExecutionSwitchSerializer.Meta):
        fields = [*ExecutionSwitchSerializer.Meta.fields, "enqueued"]
        read_only_fields = fields


def may_see_switch(user) -> bool:
    """Owners, team members and approvers: everyone whose work the switch holds, and no outsider."""
    return (
        access.has_global(user, "actions.view_executionswitch")
        or access.team_for(user).exists()
        or access.approvals_for(user).exists()
    )


def current_switch() -> ExecutionSwitch:
    # Never written before means running; reading must not create the row.
    return ExecutionSwitch.objects.select_related("changed_by").filter(pk=1).first() or ExecutionSwitch()


class ExecutionViewSet(viewsets.ViewSet):
    schema = MailroomAutoSchema()
    parser_classes = [JSONParser]

    def _change(self, request, change) -> tuple[ExecutionSwitch, object]:
        if not access.has_global(request.user, CHANGE_SWITCH):
            raise PermissionDenied(f"You need the permission {CHANGE_SWITCH} to pause or resume execution.")
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        outcome = change(acting_user=request.user, reason=body.validated_data["reason"])
        return current_switch(), outcome

    @extend_schema(
        summary="Whether execution is paused, since when, by whom and why", responses=ExecutionSwitchSerializer
    )
    def state(self, request) -> Response:
        if not may_see_switch(request.user):
            raise PermissionDenied("Only owners, team members and approvers see the execution switch.")
        return Response(ExecutionSwitchSerializer(current_switch()).data)

    @extend_schema(
        summary="Pause all execution (queued actions stay queued; intake and analysis go on)",
        request=ReasonSerializer,
        responses=ExecutionSwitchSerializer,
    )
    def pause(self, request) -> Response:
        switch, _ = self._change(request, pause_execution)
        return Response(ExecutionSwitchSerializer(switch).data)

    @extend_schema(
        summary="Resume execution: every due queued action goes back to the workers",
        request=ReasonSerializer,
        responses=ResumedSerializer,
    )
    def resume(self, request) -> Response:
        switch, enqueued = self._change(request, resume_execution)
        return Response({**ExecutionSwitchSerializer(switch).data, "enqueued": enqueued})


urlpatterns = [
    path("execution/", ExecutionViewSet.as_view({"get": "state"}), name="execution"),
    path("execution/pause/", ExecutionViewSet.as_view({"post": "pause"}), name="execution-pause"),
    path("execution/resume/", ExecutionViewSet.as_view({"post": "resume"}), name="execution-resume"),
]
