"""Admin for approval policies and approvals, where approvers decide the approvals they were asked to.

Deciding goes through approvals.decisions.decide, the same write path as the
emailed link and the API; the admin only collects the decision and comment
and reports what decide() accepted or refused. Who may decide which approval
is guardian's object permission, which the admin never edits: the
permission tables are deliberately not registered here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from actions.admin_utils import AuditedAdminMixin, ReadOnlyAdminMixin, ReadOnlyInline, admin_link
from approvals.decisions import PERMISSION, DecisionRefused, decide, may_decide
from approvals.models import Approval, ApprovalPolicy, ApprovalStatus, ApprovalVote, Decision


def approvals_visible_to(user, queryset):
    """The approvals in `queryset` that `user` may see: all for a superuser, else those they may decide."""
    if user.is_superuser:
        return queryset
    # Only the approvals this person was asked to decide; a global
    # permission must not widen that to every approval.
    return get_objects_for_user(user, PERMISSION, klass=queryset, accept_global_perms=False)


class ApprovalInline(ReadOnlyInline):
    """An action's approvals, limited like the approval list to those the viewer may see."""

    model = Approval
    fields = ["status", "level", "approver_role", "expires_at", "decided_by", "decided_at", "comment"]
    ordering = ["requested_at"]

    def get_queryset(self, request):
        return approvals_visible_to(request.user, super().get_queryset(request).select_related("decided_by"))


class ApprovalVoteInline(ReadOnlyInline):
    """Who decided an approval, how, through what, and what they said."""

    model = ApprovalVote
    fields = ["voter", "decision", "comment", "via", "created_at"]
    ordering = ["created_at", "id"]
    show_change_link = False
    verbose_name_plural = "votes"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("voter")

    def has_view_permission(self, request, obj=None) -> bool:
        # Votes are part of their approval: whoever may see the approval sees them,
        # without a permission of their own on the vote model.
        return self.admin_site.get_model_admin(Approval).has_view_permission(request, obj)


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


class DecisionActionForm(ActionForm):
    """The list's action bar, with a comment that goes with "Approve selected" and "Reject selected"."""

    comment = forms.CharField(
        label="Comment:", required=False, widget=forms.TextInput(attrs={"size": 30, "class": "vTextField"})
    )


class ApprovalChangeList(ChangeList):
    """The approval list, which also works out, for the whole page at once, which rows are the viewer's to decide."""

    def get_results(self, request) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        mark_yours_to_decide(request.user, self.result_list)


def mark_yours_to_decide(user, approvals: list[Approval]) -> None:
    """Set `yours_to_decide` on each approval, with a constant number of queries whatever their number.

    The approvals must come from ApprovalAdmin.get_queryset (which annotates `voted_by_you`).
    """
    checker = ObjectPermissionChecker(user)
    if approvals and not user.is_superuser:
        # Two queries (the user's and their groups' permissions) instead of two per row.
        checker.prefetch_perms(approvals)
    for approval in approvals:
        approval.yours_to_decide = (
            approval.status == ApprovalStatus.PENDING
            and not approval.voted_by_you
            and checker.has_perm(PERMISSION, approval)
        )


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "action_link",
        "status",
        "yours",
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
    inlines = [ApprovalVoteInline]
    actions = ["approve_selected", "reject_selected"]
    action_form = DecisionActionForm
    change_form_template = "admin/approvals/approval/change_form.html"

    def get_queryset(self, request):
        voted = ApprovalVote.objects.filter(approval=OuterRef("pk"), voter=request.user.pk)
        return approvals_visible_to(request.user, super().get_queryset(request)).annotate(voted_by_you=Exists(voted))

    def get_changelist(self, request, **kwargs):
        return ApprovalChangeList

    @admin.display(description="action", ordering="action__created_at")
    def action_link(self, obj: Approval):
        return admin_link(obj.action)

    @admin.display(description="yours to decide", boolean=True)
    def yours(self, obj: Approval) -> bool:
        return getattr(obj, "yours_to_decide", False)

    # --- Deciding ---

    def has_decide_permission(self, request, obj: Approval | None = None) -> bool:
        """Whether the admin offers deciding: the model's change permission, and for one approval, its own.

        decide() checks the object permission again; this only decides what to show.
        """
        if not request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}"):
            return False
        return obj is None or may_decide(request.user, obj)

    def decide_each(self, request, approvals: Iterable[Approval], decision: str, comment: str) -> None:
        """Decide each approval as request.user, then report what was settled and each refusal with its reason."""
        outcomes: Counter[str] = Counter()
        for approval in approvals:
            try:
                outcomes[decide(approval, request.user, decision, comment=comment, via="admin").status] += 1
            except (DecisionRefused, PermissionDenied) as exc:
                self.message_user(request, f"{approval}: {exc}", messages.WARNING)
        if count := outcomes[ApprovalStatus.APPROVED]:
            text = ngettext(
                "Approved %d approval; its action is queued.", "Approved %d approvals; their actions are queued.", count
            )
            self.message_user(request, text % count, messages.SUCCESS)
        if count := outcomes[ApprovalStatus.REJECTED]:
            text = ngettext("Rejected %d approval.", "Rejected %d approvals.", count)
            self.message_user(request, text % count, messages.SUCCESS)
        if count := outcomes[ApprovalStatus.PENDING]:
            text = ngettext(
                "Recorded your approval of %d approval, which waits for more approvers.",
                "Recorded your approval of %d approvals, which wait for more approvers.",
                count,
            )
            self.message_user(request, text % count, messages.SUCCESS)

    @admin.action(description="Approve selected", permissions=["decide"])
    def approve_selected(self, request, queryset) -> None:
        self.decide_each(request, queryset, Decision.APPROVE, request.POST.get("comment", "").strip())

    @admin.action(description="Reject selected", permissions=["decide"])
    def reject_selected(self, request, queryset) -> None:
        self.decide_each(request, queryset, Decision.REJECT, request.POST.get("comment", "").strip())

    def _url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def get_urls(self):
        decide_url = path(
            "<path:object_id>/decide/",
            self.admin_site.admin_view(require_POST(self.decide_view)),
            name=self._url_name("decide"),
        )
        return [decide_url, *super().get_urls()]

    def decide_view(self, request, object_id: str) -> HttpResponseRedirect:
        """The change page's Approve / Reject form posts here: decide, then go back to the page with a message."""
        approval = self.get_object(request, unquote(object_id))
        if approval is None:
            # Not found, or not this person's to see: the same answer for both.
            self.message_user(request, f"There is no approval with ID “{object_id}” for you.", messages.WARNING)
            return redirect(f"admin:{self._url_name('changelist')}")
        if not self.has_decide_permission(request):
            raise PermissionDenied
        decision = request.POST.get("decision", "")
        self.decide_each(request, [approval], decision, request.POST.get("comment", "").strip())
        return redirect(f"admin:{self._url_name('change')}", quote(approval.pk))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        approval = self.get_object(request, unquote(object_id))
        can_decide = (
            approval is not None
            and approval.status == ApprovalStatus.PENDING
            and not approval.voted_by_you
            and self.has_decide_permission(request, approval)
        )
        extra_context = {**(extra_context or {}), "can_decide": can_decide}
        if can_decide:
            extra_context["decide_url"] = reverse(f"admin:{self._url_name('decide')}", args=[quote(approval.pk)])
        return super().change_view(request, object_id, form_url, extra_context)
