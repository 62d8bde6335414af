"""Inbound mail in the admin: every message with its thread, headers, attachments, actions and runs;
quarantined mail with its reason; and the review queue, where a person decides what the analysis could not.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.html import format_html, format_html_join

from actions.admin.runs import steps_table
from actions.admin_utils import ReadOnlyAdminMixin, ReadOnlyInline, admin_link, apply_each, checked_params
from actions.models import Action, ActionStatus, Attachment, Email, EmailStatus, ReviewItem
from actions.pipeline import RunControlError, reprocess_email
from actions.proposals import InvalidProposal
from actions.review import accept_proposal, discard_proposal, edit_proposal, finish_review
from actions.transitions import TransitionError

RAW_PREVIEW_BYTES = 8192


class AttachmentInline(ReadOnlyInline):
    model = Attachment
    fields = ["filename", "content_type", "size", "sha256"]


class EmailActionInline(ReadOnlyInline):
    model = Action
    fields = ["type", "status", "priority", "confidence", "created_at"]
    ordering = ["created_at"]


class MailAdminMixin:
    """What the mail list and the review queue share: the attachment count and the message's parts."""

    search_fields = ["subject", "from_address", "from_name", "message_id"]
    date_hierarchy = "received_at"

    def get_queryset(self, request):
        # A subquery, not Count("attachments"): a join with GROUP BY would also
        # weigh on the page count, the filters' choices and the date hierarchy.
        attachments = (
            Attachment.objects.filter(email=OuterRef("pk")).order_by().values("email").annotate(total=Count("pk"))
        )
        return (
            super().get_queryset(request).annotate(attachment_total=Coalesce(Subquery(attachments.values("total")), 0))
        )

    @admin.display(description="subject", ordering="subject")
    def subject_or_blank(self, obj: Email) -> str:
        return obj.subject or "(no subject)"

    @admin.display(description="attachments", ordering="attachment_total")
    def attachment_count(self, obj: Email) -> int:
        return obj.attachment_total

    @admin.display(description="in reply to")
    def thread_parent(self, obj: Email):
        return admin_link(obj.parent) if obj.parent_id else obj.in_reply_to or "-"

    @admin.display(description="headers")
    def headers_table(self, obj: Email):
        return (
            format_html_join("", "<div><strong>{}:</strong> {}</div>", ((name, value) for name, value in obj.headers))
            or "-"
        )

    @admin.display(description="references")
    def references_list(self, obj: Email):
        return format_html_join("", "<div>{}</div>", ((ref,) for ref in obj.references)) or "-"


@admin.register(Email)
class EmailAdmin(MailAdminMixin, admin.ModelAdmin):
    """Every message as it arrived. Nothing here is edited; a message can be processed again."""

    list_display = [
        "subject_or_blank",
        "from_address",
        "mailbox",
        "status",
        "automated",
        "category",
        "received_at",
        "attachment_count",
    ]
    list_filter = ["status", "automated", "source", "mailbox", "category", "received_at"]
    fieldsets = [
        (None, {"fields": ["subject", "sender", "to", "cc", "mailbox", "received_at", "source", "size"]}),
        ("State", {"fields": ["status", "status_reason", "automated", "category", "priority", "summary"]}),
        ("Body", {"fields": ["text_body", "draft_reply"]}),
        ("Thread", {"fields": ["message_id", "thread_parent", "references_list"]}),
        ("Headers", {"fields": ["headers_table"], "classes": ["collapse"]}),
        ("Raw message", {"fields": ["raw_preview"], "classes": ["collapse"]}),
        ("Processing", {"fields": ["latest_run"]}),
    ]
    readonly_fields = [field for _, options in fieldsets for field in options["fields"]]
    inlines = [AttachmentInline, EmailActionInline]
    actions = ["process_again"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Mail is part of the record: it is quarantined or ignored, never deleted here.
        return False

    @admin.display(description="raw message (start)")
    def raw_preview(self, obj: Email):
        raw = bytes(obj.raw or b"")
        if not raw:
            return "Not stored (see the reason above)." if obj.status == EmailStatus.QUARANTINED else "-"
        more = f"\n[... {len(raw) - RAW_PREVIEW_BYTES:,} more bytes]" if len(raw) > RAW_PREVIEW_BYTES else ""
        return format_html("<pre>{}{}</pre>", raw[:RAW_PREVIEW_BYTES].decode("utf-8", "replace"), more)

    @admin.display(description="latest run")
    def latest_run(self, obj: Email):
        return steps_table(obj.runs.prefetch_related("steps").order_by("-pk").first())

    @admin.action(description="Process selected messages again (new run)", permissions=["change"])
    def process_again(self, request, queryset) -> None:
        apply_each(
            self,
            request,
            queryset,
            lambda email: reprocess_email(email, acting_user=request.user),
            verb="Started a new run for",
            noun="message",
            refusals=(RunControlError,),
        )


DECISIONS = [("", "Leave as it is"), ("accept", "Accept"), ("discard", "Discard")]


class ProposalForm(forms.ModelForm):
    """One proposal in review: its parameters, editable, and what to do with it."""

    decision = forms.ChoiceField(choices=DECISIONS, required=False)

    class Meta:
        model = Action
        fields = ["params"]

    def clean_params(self):
        return checked_params(self.instance.type, self.cleaned_data.get("params"))


class ProposalInline(admin.StackedInline):
    model = Action
    form = ProposalForm
    fk_name = "email"
    fields = ["type", "confidence", "rationale", "params", "decision"]
    readonly_fields = ["type", "confidence", "rationale"]
    extra = 0
    can_delete = False
    verbose_name = "proposal"
    verbose_name_plural = "proposals waiting for a decision"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=ActionStatus.PROPOSED).order_by("pk")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ReviewForm(forms.ModelForm):
    done = forms.BooleanField(
        required=False, label="Reviewed", help_text="Take the message out of the queue once the proposals are decided."
    )
    note = forms.CharField(required=False, label="Note", widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = ReviewItem
        fields = []


@admin.register(ReviewItem)
class ReviewQueueAdmin(MailAdminMixin, admin.ModelAdmin):
    """Messages the analysis could not decide: accept, edit or discard their proposals, then mark reviewed."""

    form = ReviewForm
    list_display = ["subject_or_blank", "from_address", "category", "status_reason", "received_at", "open_proposals"]
    list_filter = ["category", "mailbox", "received_at"]
    fieldsets = [
        (None, {"fields": ["subject", "sender", "received_at", "category", "status_reason", "summary"]}),
        ("Message", {"fields": ["text_body", "draft_reply"]}),
        ("Processing", {"fields": ["latest_run"]}),
        ("Review", {"fields": ["done", "note"]}),
    ]
    readonly_fields = [
        "subject", "sender", "received_at", "category", "status_reason", "summary", "text_body", "draft_reply",
        "latest_run",
    ]  # fmt: skip
    inlines = [ProposalInline]

    def get_queryset(self, request):
        proposed = Action.objects.filter(email=OuterRef("pk"), status=ActionStatus.PROPOSED).order_by().values("email")
        return (
            super()
            .get_queryset(request)
            .filter(status=EmailStatus.REVIEW)
            .annotate(proposal_total=Coalesce(Subquery(proposed.annotate(n=Count("pk")).values("n")), 0))
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="open proposals", ordering="proposal_total")
    def open_proposals(self, obj: Email) -> int:
        return obj.proposal_total

    @admin.display(description="latest run")
    def latest_run(self, obj: Email):
        return steps_table(obj.runs.prefetch_related("steps").order_by("-pk").first())

    def save_model(self, request, obj, form, change: bool) -> None:
        """The message itself is not edited here; save_related makes the decisions."""

    def save_related(self, request, form, formsets, change: bool) -> None:
        for formset in formsets:
            for proposal_form in formset.forms:
                self._decide(request, proposal_form)
            # Nothing is saved through the formset: the service functions wrote (and audited) each change.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if form.cleaned_data.get("done"):
            finish_review(form.instance, acting_user=request.user, note=form.cleaned_data.get("note", ""))
            self.message_user(request, "Marked reviewed.", messages.SUCCESS)

    def _decide(self, request, proposal_form: ProposalForm) -> None:
        action = Action.objects.get(pk=proposal_form.instance.pk)
        decision = proposal_form.cleaned_data.get("decision")
        try:
            if "params" in proposal_form.changed_data:
                edit_proposal(action, proposal_form.cleaned_data["params"], acting_user=request.user)
            if decision == "accept":
                route = accept_proposal(action, acting_user=request.user)
                self.message_user(request, f"{action}: accepted; {route.kind} ({route.reason}).", messages.SUCCESS)
            elif decision == "discard":
                discard_proposal(action, acting_user=request.user)
                self.message_user(request, f"{action}: discarded.", messages.SUCCESS)
        except (InvalidProposal, TransitionError) as exc:
            self.message_user(request, f"{action}: {exc}", messages.WARNING)


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["filename", "content_type", "size", "email"]
    list_select_related = ["email"]
    list_filter = ["content_type"]
    search_fields = ["filename", "email__subject"]
