"""Processing runs in the admin: a run as a timeline of its steps, and pause, resume and cancel."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from actions.admin_utils import ReadOnlyAdminMixin, admin_link, apply_each, when
from actions.models import ProcessingRun, RunStatus, RunStep
from actions.pipeline import RunControlError, cancel_run, pause_run, resume_run
from actions.stats import FINISHED_RUNS, run_status

_STATUS_COLOURS = {
    RunStatus.SUCCEEDED: "#15803d",
    RunStatus.FAILED: "#b91c1c",
    RunStatus.RUNNING: "#1d4ed8",
    RunStatus.PAUSED: "#b45309",
    RunStatus.CANCELLED: "#6b7280",
    RunStatus.PENDING: "#6b7280",
}


def _log_lines(step: RunStep):
    lines = []
    for line in step.log:
        if isinstance(line, dict):
            lines.append((line.get("at", "")[11:23], line.get("message", "")))
        else:
            lines.append(("", str(line)))
    return format_html_join("", '<li><span class="mr-at">{}</span> {}</li>', lines)


def _took(step: RunStep) -> str:
    if step.started_at and step.finished_at:
        return f"{(step.finished_at - step.started_at).total_seconds():.3f} s"
    return "under way" if step.started_at else "not started"


def _timeline(run: ProcessingRun):
    """The run's status and each step with its status, start, duration and log lines."""
    items = format_html_join(
        "",
        '<li class="mr-step" data-step="{}"><span class="mr-dot" style="background:{}"></span>'
        '<strong>{}</strong> &middot; {} &middot; {} &middot; {}<ul class="mr-log">{}</ul></li>',
        (
            (
                step.name,
                _STATUS_COLOURS.get(step.status, "#6b7280"),
                step.get_name_display(),
                step.get_status_display(),
                when(step.started_at),
                _took(step),
                _log_lines(step),
            )
            for step in run.steps.all()
        ),
    )
    return format_html(
        "<style>.mr-timeline{{list-style:none;margin:0;padding:0 0 0 6px;border-left:2px solid #d1d5db}}"
        ".mr-step{{position:relative;margin:0 0 14px 0;padding-left:16px}}"
        ".mr-dot{{position:absolute;left:-12px;top:3px;width:12px;height:12px;border-radius:6px}}"
        ".mr-log{{margin:4px 0 0 0;padding-left:16px;font-size:12px}}.mr-at{{color:#6b7280;font-family:monospace}}"
        '</style><p>{} &middot; <span class="mr-run-status" data-status="{}">{}</span>{}</p>'
        '<ol class="mr-timeline">{}</ol>',
        admin_link(run),
        run.status,
        run.get_status_display(),
        f" ({run.reason})" if run.reason else "",
        items,
    )


def steps_table(run: ProcessingRun | None):
    """The run as a timeline, in a box that run_status.js refreshes from the run's status URL while it runs."""
    if run is None:
        return "-"
    return format_html(
        '<div class="mr-run" data-status-url="{}" data-finished="{}">{}</div>',
        reverse("admin:actions_processingrun_status", args=[run.pk]),
        "true" if run.status in FINISHED_RUNS else "false",
        _timeline(run),
    )


@admin.register(ProcessingRun)
class ProcessingRunAdmin(admin.ModelAdmin):
    """Runs are written by the pipeline; a person reads them and pauses, resumes or cancels them."""

    list_display = ["__str__", "email_link", "status", "backend", "created_at", "duration", "tokens_used", "cost"]
    list_filter = ["status", "backend", "created_at"]
    list_select_related = ["email"]
    search_fields = ["email__subject", "email__from_address"]
    date_hierarchy = "created_at"
    fields = ["email_link", "status", "reason", "backend", "model", "tokens_used", "cost", "timeline"]
    readonly_fields = fields
    actions = ["pause_runs", "resume_runs", "cancel_runs"]

    class Media:
        # Live status: the timeline and the status field follow the run without reloading.
        js = ["actions/run_status.js"]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("steps")

    def get_urls(self):
        status = path(
            "<path:object_id>/status/",
            self.admin_site.admin_view(self.status_view),
            name="actions_processingrun_status",
        )
        return [status, *super().get_urls()]

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The run's live status as JSON (the shape of GET /api/v1/runs/{id}/status/), with its timeline's HTML."""
        if not object_id.isdigit():
            raise Http404
        run = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse({**run_status(run), "timeline_html": str(_timeline(run))})

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="email", ordering="email__received_at")
    def email_link(self, obj: ProcessingRun):
        return admin_link(obj.email)

    @admin.display(description="timeline")
    def timeline(self, obj: ProcessingRun):
        return steps_table(obj)

    def _control(self, request, queryset, verb: str, operation) -> None:
        # A refusal names its run itself ("Run 7 is cancelled; ...").
        apply_each(self, request, queryset, operation, verb=verb, noun="run", refusals=(RunControlError,))

    @admin.action(description="Pause selected runs", permissions=["change"])
    def pause_runs(self, request, queryset) -> None:
        self._control(
            request,
            queryset,
            "Paused",
            lambda run: pause_run(run, acting_user=request.user, reason="paused in the admin"),
        )

    @admin.action(description="Resume selected runs", permissions=["change"])
    def resume_runs(self, request, queryset) -> None:
        self._control(request, queryset, "Resumed", lambda run: resume_run(run, acting_user=request.user))

    @admin.action(description="Cancel selected runs and their pending actions", permissions=["change"])
    def cancel_runs(self, request, queryset) -> None:
        self._control(
            request,
            queryset,
            "Cancelled",
            lambda run: cancel_run(run, acting_user=request.user, reason="cancelled in the admin"),
        )


@admin.register(RunStep)
class RunStepAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["name", "status", "run", "started_at", "finished_at"]
    list_filter = ["name", "status", "started_at"]
    list_select_related = ["run"]
    search_fields = ["run__email__subject", "run__email__from_address", "=run__id"]
    date_hierarchy = "started_at"
