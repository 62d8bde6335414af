"""Actions in the admin: propose, run (through the policies), cancel, retry, undo; and the kill switch."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages

from actions.admin.audit import audit_table
from actions.admin.runs import steps_table
from actions.admin_utils import ReadOnlyAdminMixin, admin_link, apply_each, checked_params, pretty_json
from actions.executor import (
    cancel_action,
    pause_execution,
    queue_action,
    resume_execution,
    retry_action,
    undo_action,
)
from actions.handlers import UndoRefused
from actions.models import Action, ActionStatus, DomainSend, ExecutionSwitch
from actions.proposals import propose_action
from actions.transitions import TransitionError
from approvals.admin import ApprovalInline
from teams.admin import assignment_table


class ActionProposalForm(forms.ModelForm):
    """The add form: what a person proposes. ActionAdmin.save_model hands it to propose_action."""

    class Meta:
        model = Action
        fields = ["type", "email", "priority", "params", "rationale"]

    def clean_params(self):
        # propose_action refuses these too, but by then the form could no longer say so.
        params = self.cleaned_data.get("params")
        return params if params is None else checked_params(self.cleaned_data.get("type"), params)


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "status",
        "priority",
        "email_link",
        "assignee",
        "source",
        "confidence",
        "attempts",
        "created_at",
    ]
    list_filter = ["status", "type", "priority", "source", "created_at"]
    list_select_related = ["email", "assignee__user"]
    search_fields = ["idempotency_key", "rationale", "email__subject", "email__from_address"]
    date_hierarchy = "created_at"
    actions = ["run_actions", "cancel_actions", "retry_actions", "undo_actions"]
    inlines = [ApprovalInline]
    add_form = ActionProposalForm
    fieldsets = [
        (
            None,
            {"fields": ["type", "status", "priority", "email_link", "source", "confidence", "rationale", "created_by"]},
        ),
        ("Parameters", {"fields": ["params_pretty", "context_pretty"]}),
        ("Assignment", {"fields": ["assignee", "suggested_assignees"]}),
        (
            "Execution",
            {
                "fields": [
                    "idempotency_key",
                    "attempts",
                    "scheduled_for",
                    "next_attempt_at",
                    "lease_expires_at",
                    "last_error",
                    "result_pretty",
                    "undo_pretty",
                ]
            },
        ),
        ("Processing run", {"fields": ["run_steps"]}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]
    raw_id_fields = ["email"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": list(self.add_form.base_fields)})]
        return self.fieldsets

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        # The status only moves through the state machine; nothing else here is hand-edited.
        return [field for _, options in self.fieldsets for field in options["fields"]]

    def has_delete_permission(self, request, obj=None) -> bool:
        # An action is part of the record; it is cancelled, never deleted.
        return False

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []

    def save_model(self, request, obj: Action, form, change: bool) -> None:
        if change:
            return
        # The form has validated the fields; proposing audits the new action.
        created = propose_action(
            obj.type,
            email=obj.email,
            params=obj.params,
            priority=obj.priority,
            rationale=obj.rationale,
            acting_user=request.user,
        )
        obj.pk = created.pk
        obj._state.adding = False

    @admin.display(description="email", ordering="email__received_at")
    def email_link(self, obj: Action):
        return admin_link(obj.email)

    @admin.display(description="parameters")
    def params_pretty(self, obj: Action):
        return pretty_json(obj.params)

    @admin.display(description="context")
    def context_pretty(self, obj: Action):
        return pretty_json(obj.context)

    @admin.display(description="result")
    def result_pretty(self, obj: Action):
        return pretty_json(obj.result)

    @admin.display(description="undo data")
    def undo_pretty(self, obj: Action):
        return pretty_json(obj.undo_data)

    @admin.display(description="suggestions")
    def suggested_assignees(self, obj: Action):
        return assignment_table(obj)

    @admin.display(description="steps")
    def run_steps(self, obj: Action):
        return steps_table(obj.run)

    @admin.display(description="entries")
    def audit_trail(self, obj: Action):
        return audit_table(obj)

    def _apply(self, request, queryset, verb: str, operation) -> None:
        """Run `operation` on each selected action; report how many it did and each refusal's reason."""
        apply_each(
            self,
            request,
            queryset,
            operation,
            verb=verb,
            noun="action",
            refusals=(TransitionError, UndoRefused),
            prefix=lambda action: f"Action {action.pk}: ",
        )

    # These change actions, so viewing them is not enough.
    @admin.action(description="Cancel selected actions", permissions=["change"])
    def cancel_actions(self, request, queryset) -> None:
        self._apply(
            request,
            queryset,
            "Cancelled",
            lambda action: cancel_action(action, acting_user=request.user, reason="cancelled in the admin"),
        )

    @admin.action(description="Run selected actions (approval asked where a policy says)", permissions=["change"])
    def run_actions(self, request, queryset) -> None:
        from approvals.routing import route_action

        def run(action: Action) -> None:
            # A person asking is not an approval: the policies still decide.
            if action.status == ActionStatus.PROPOSED:
                route_action(action, acting_user=request.user, actor="")
            else:
                queue_action(action, acting_user=request.user, reason="run from the admin")

        self._apply(request, queryset, "Routed", run)

    @admin.action(description="Retry selected dead or failed actions", permissions=["change"])
    def retry_actions(self, request, queryset) -> None:
        self._apply(request, queryset, "Retried", lambda action: retry_action(action, acting_user=request.user))

    @admin.action(description="Undo selected actions", permissions=["change"])
    def undo_actions(self, request, queryset) -> None:
        self._apply(request, queryset, "Undid", lambda action: undo_action(action, acting_user=request.user))


@admin.register(ExecutionSwitch)
class ExecutionSwitchAdmin(admin.ModelAdmin):
    """The kill switch. Select the row and pause or resume."""

    list_display = ["__str__", "changed_at", "changed_by", "reason"]
    list_select_related = ["changed_by"]
    actions = ["pause", "resume"]
    readonly_fields = ["paused", "changed_at", "changed_by", "reason"]

    def get_queryset(self, request):
        ExecutionSwitch.current()  # There is always the one row to act on.
        return super().get_queryset(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Pause all execution (kill switch)", permissions=["change"])
    def pause(self, request, queryset) -> None:
        pause_execution(acting_user=request.user, reason="paused in the admin")
        self.message_user(request, "Execution paused. Queued actions wait; nothing is lost.", messages.WARNING)

    @admin.action(description="Resume execution", permissions=["change"])
    def resume(self, request, queryset) -> None:
        count = resume_execution(acting_user=request.user, reason="resumed in the admin")
        self.message_user(request, f"Execution resumed; {count} queued actions enqueued.", messages.SUCCESS)


@admin.register(DomainSend)
class DomainSendAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["domain", "at", "action"]
    list_filter = ["at"]
    list_select_related = ["action"]
    search_fields = ["domain"]
    date_hierarchy = "at"
