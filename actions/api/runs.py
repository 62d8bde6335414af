"""/api/v1/runs/: processing runs with their steps and log lines; pause, resume and cancel one.

A run is visible to whoever may see its email (access.runs_for). Pausing,
resuming and cancelling go through actions.pipeline.control and need the
global permission actions.change_processingrun; a run whose state does not
allow the change answers 409 with the reason.

GET /runs/{id}/status/ is the small answer for live polling (the run's admin
page reads it every few seconds). Its shape is stable:
{"status", "steps": [{"name", "status", "started_at", "finished_at"}], "updated_at"}.
"""

from __future__ import annotations

from collections.abc import Callable

import django_filters
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action as endpoint
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import DateTimeRangeFilter, IdFilter
from actions.api.openapi import ERROR
from actions.api.serializers import Conflict, ReasonSerializer
from actions.api.viewsets import VisibleViewSet
from actions.models import Action, ProcessingRun, RunStatus, RunStep
from actions.pipeline.control import RunControlError, cancel_run, pause_run, resume_run
from actions.stats import run_status

CHANGE_RUN = "actions.change_processingrun"


def _seconds(started, finished) -> float | None:
    return (finished - started).total_seconds() if started and finished else None


class LogLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True, help_text="When it was written (absent in old demo runs).")
    message = serializers.CharField()


class StepStatusSerializer(serializers.ModelSerializer):
    """A step as the live status shows it: where it is, no logs."""

    class Meta:
        model = RunStep
        fields = ["name", "status", "started_at", "finished_at"]
        read_only_fields = fields


class StepSerializer(StepStatusSerializer):
    """A step with how long it took and what it logged, oldest line first."""

    duration = serializers.SerializerMethodField(help_text="Seconds from start to finish; null while under way.")
    log = serializers.SerializerMethodField()

    class Meta(StepStatusSerializer.Meta):
        fields = [*StepStatusSerializer.Meta.fields, "duration", "log"]
        read_only_fields = fields

    def get_duration(self, step: RunStep) -> float | None:
        return _seconds(step.started_at, step.finished_at)

    @extend_schema_field(LogLineSerializer(many=True))
    def get_log(self, step: RunStep) -> list[dict]:
        # Lines are {"at", "message"}; demo runs wrote bare strings.
        return [line if isinstance(line, dict) else {"at": None, "message": str(line)} for line in step.log]


class RunSerializer(serializers.ModelSerializer):
    """A run in a list: its email, where it stands and what it cost."""

    duration = serializers.SerializerMethodField(help_text="Seconds from start to finish; null while under way.")

    class Meta:
        model = ProcessingRun
        fields = [
            "id",
            "email",
            "status",
            "reason",
            "created_at",
            "started_at",
            "finished_at",
            "duration",
            "backend",
            "model",
            "tokens_used",
            "cost",
        ]
        read_only_fields = fields

    def get_duration(self, run: ProcessingRun) -> float | None:
        return _seconds(run.started_at, run.finished_at)


class RunActionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Action
        fields = ["id", "type", "status"]
        read_only_fields = fields


class RunDetailSerializer(RunSerializer):
    """One run: every step with its timings and log, and the actions it proposed that you may see."""

    steps = StepSerializer(many=True, read_only=True)
    actions = RunActionSerializer(source="visible_actions", many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "steps", "actions"]
        read_only_fields = fields


class RunStatusSerializer(serializers.Serializer):
    """The live status of a run, for polling: a stable, small shape."""

    status = serializers.ChoiceField(choices=RunStatus.choices)
    steps = StepStatusSerializer(many=True)
    updated_at = serializers.DateTimeField(help_text="When anything about the run last changed.")


class RunFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    email = IdFilter(field_name="email_id", help_text="The id of the email.")
    reason = django_filters.CharFilter(lookup_expr="icontains", help_text="Words in the reason it failed or stopped.")
    created_at = DateTimeRangeFilter(
        help_text="Created at or after created_at_after and at or before created_at_before (ISO 8601)."
    )

    class Meta:
        model = ProcessingRun
        fields = ["status", "email", "reason", "created_at"]


def _control_schema(summary: str) -> Callable:
    return extend_schema(
        summary=summary,
        request=ReasonSerializer,
        responses={200: RunDetailSerializer, 409: ERROR},
        description=f"Needs the permission {CHANGE_RUN}. 409 when the run's state does not allow it.",
    )


@extend_schema_view(
    list=extend_schema(
        summary="Processing runs you may see, newest first",
        description="`search` looks in the email's subject and sender.",
    ),
    retrieve=extend_schema(summary="One run with its steps, timings and log lines"),
)
class RunViewSet(VisibleViewSet):
    visible = staticmethod(access.runs_for)
    serializer_class = RunSerializer
    detail_serializer_class = RunDetailSerializer
    filterset_class = RunFilter
    search_fields = ["email__subject", "email__from_address"]
    ordering_fields = ["created_at", "started_at", "finished_at"]
    ordering = ["-created_at"]

    def get_serializer_class(self):
        if self.action == "live_status":
            return RunStatusSerializer
        return super().get_serializer_class()

    def shape(self, queryset: QuerySet[ProcessingRun]) -> QuerySet[ProcessingRun]:
        if self.action == "list":
            return queryset
        queryset = queryset.prefetch_related("steps")
        if self.action == "live_status":
            return queryset
        actions = access.actions_for(self.request.user).only("pk", "type", "status", "run_id").order_by("pk")
        return queryset.prefetch_related(Prefetch("actions", queryset=actions, to_attr="visible_actions"))

    def _control(self, change: Callable) -> Response:
        run = self.get_object()
        self.require(CHANGE_RUN)
        body = ReasonSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        try:
            change(run, acting_user=self.request.user, reason=body.validated_data["reason"])
        except RunControlError as exc:
            raise Conflict(str(exc)) from exc
        return Response(RunDetailSerializer(self.get_object(), context=self.get_serializer_context()).data)

    @_control_schema("Pause a run: the pipeline stops at its next step and its queued actions wait")
    @endpoint(detail=True, methods=["post"])
    def pause(self, request, pk=None) -> Response:
        return self._control(pause_run)

    @_control_schema("Resume a paused run from where it stopped")
    @endpoint(detail=True, methods=["post"])
    def resume(self, request, pk=None) -> Response:
        return self._control(resume_run)

    @_control_schema("Cancel a run and every action of it that has not started")
    @endpoint(detail=True, methods=["post"])
    def cancel(self, request, pk=None) -> Response:
        return self._control(cancel_run)

    @extend_schema(
        summary="A run's live status, for polling",
        description="Small and stable: the run's status, each step's status and times, and when it last changed.",
    )
    @endpoint(detail=True, methods=["get"], url_path="status", url_name="status")
    def live_status(self, request, pk=None) -> Response:
        # The same status the run's admin page polls; the serializer keeps the API's smaller shape.
        return Response(RunStatusSerializer(run_status(self.get_object())).data)


router = SimpleRouter()
router.register("runs", RunViewSet, basename="run")
urlpatterns = router.urls
