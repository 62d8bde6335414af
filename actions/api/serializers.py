"""How actions and approvals look through the API, and what proposing or deciding takes.

The compact EmailSummarySerializer and MemberSummarySerializer, the error
body (ErrorSerializer) and the 409 Conflict are shared: other API modules
may use them for the same things.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from drf_spectacular.utils import extend_schema_field
from guardian.core import ObjectPermissionChecker
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.reverse import reverse

from actions.api import access
from actions.handlers import UndoRefused, get_handler, validation_errors
from actions.models import Action, ActionStatus, ActionType, Email, Priority
from actions.transitions import TransitionError, can_transition
from approvals.decisions import PERMISSION as DECIDE
from approvals.decisions import DecisionRefused
from approvals.models import Approval, ApprovalStatus, ApprovalVote, Decision
from teams.models import Role, TeamMember

# --- Shared compact forms ------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Why a request was refused (401, 403, 404, 409, 429)."""

    detail = serializers.CharField()


class Conflict(APIException):
    """409: the object is not in a state that allows this (already decided, not undoable...)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


@contextmanager
def refusals_as_conflicts() -> Iterator[None]:
    """Answer the service layer's refusals (illegal transitions, undo or decision refused) with 409 and the reason."""
    try:
        yield
    except (TransitionError, UndoRefused, DecisionRefused) as exc:
        raise Conflict(str(exc)) from exc


class EmailSummarySerializer(serializers.ModelSerializer):
    """An email in a line: enough to recognise it without its body."""

    class Meta:
        model = Email
        fields = ["id", "mailbox", "from_address", "from_name", "subject", "received_at", "status"]
        read_only_fields = fields


class MemberSummarySerializer(serializers.ModelSerializer):
    """A team member in a line: who they are and their role."""

    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="__str__", read_only=True)
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = TeamMember
        fields = ["id", "username", "name", "email", "role"]
        read_only_fields = fields


# --- Who may decide what ------------------------------------------------------------------


class DecisionRights:
    """Whether the requesting user may decide approvals, answered for a whole page in a few queries.

    The bulk form of approvals.decisions.may_decide: one guardian checker,
    its permissions fetched once per page instead of once per approval.
    """

    def __init__(self, user) -> None:
        self.user = user
        self.active = bool(user and user.is_active)
        self.checker = ObjectPermissionChecker(user) if self.active else None

    def prefetch(self, approvals) -> None:
        approvals = list(approvals)
        if self.checker is not None and approvals and not self.user.is_superuser:
            self.checker.prefetch_perms(approvals)

    def may_vote_now(self, approval: Approval) -> bool:
        """Whether the user may vote on `approval` now: pending, theirs to decide, not voted yet."""
        if not self.active or approval.status != ApprovalStatus.PENDING:
            return False
        if not (self.user.is_superuser or self.checker.has_perm(DECIDE, approval)):
            return False
        # Votes are prefetched with the approvals; filtering would be a query per row.
        return all(vote.voter_id != self.user.pk for vote in approval.votes.all())


class DecisionRightsMixin:
    """For views whose serializers say whether the user may decide approvals: one checker per request."""

    @cached_property
    def decision_rights(self) -> DecisionRights:
        return DecisionRights(self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "decision_rights": self.decision_rights}


def _rights(context: dict[str, Any]) -> DecisionRights:
    rights = context.get("decision_rights")
    if rights is None:
        request = context.get("request")
        rights = context["decision_rights"] = DecisionRights(getattr(request, "user", None))
    return rights


# --- Approvals ------------------------------------------------------------------------------


class VoteSerializer(serializers.ModelSerializer):
    voter = serializers.CharField(source="voter.username", read_only=True)

    class Meta:
        model = ApprovalVote
        fields = ["id", "voter", "decision", "comment", "via", "created_at"]
        read_only_fields = fields


class ApprovalSummarySerializer(serializers.ModelSerializer):
    """An approval as its action shows it."""

    url = serializers.HyperlinkedIdentityField(view_name="api:approval-detail")
    # Blank when a group, not a role, decides: declared so the schema allows "".
    approver_role = serializers.ChoiceField(choices=Role.choices, allow_blank=True, read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True, default=None)
    votes = serializers.SerializerMethodField(help_text="How many approvers have voted.")
    you_may_decide = serializers.SerializerMethodField(
        help_text="Whether you may approve or reject it now: pending, yours to decide, not voted yet."
    )

    class Meta:
        model = Approval
        fields = [
            "id",
            "url",
            "status",
            "level",
            "approver_role",
            "approvals_required",
            "votes",
            "requested_at",
            "expires_at",
            "decided_at",
            "decided_by",
            "comment",
            "you_may_decide",
        ]
        read_only_fields = fields

    def get_votes(self, approval: Approval) -> int:
        return len(approval.votes.all())

    def get_you_may_decide(self, approval: Approval) -> bool:
        return _rights(self.context).may_vote_now(approval)


class ActionInLineSerializer(serializers.ModelSerializer):
    """An action in a line, as an approval shows it."""

    url = serializers.HyperlinkedIdentityField(view_name="api:action-detail")

    class Meta:
        model = Action
        fields = ["id", "url", "type", "status", "priority"]
        read_only_fields = fields


class ApprovalSerializer(ApprovalSummarySerializer):
    """An approval in a list: with its action and the group asked to decide it."""

    action = ActionInLineSerializer(read_only=True)
    approver_group = serializers.CharField(source="approver_group.name", read_only=True, allow_null=True, default=None)

    class Meta(ApprovalSummarySerializer.Meta):
        fields = [*ApprovalSummarySerializer.Meta.fields, "action", "approver_group"]
        read_only_fields = fields


class ApprovalDetailSerializer(ApprovalSerializer):
    """One approval with every vote cast on it."""

    votes_cast = VoteSerializer(source="votes", many=True, read_only=True)

    class Meta(ApprovalSerializer.Meta):
        fields = [*ApprovalSerializer.Meta.fields, "votes_cast"]
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    """One approver's vote: approve or reject, with an optional comment."""

    decision = serializers.ChoiceField(choices=Decision.choices)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class CommentSerializer(serializers.Serializer):
    """An optional comment kept with the decision."""

    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class ReasonSerializer(serializers.Serializer):
    """An optional reason kept in the audit trail."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=1000)


# --- Actions ----------------------------------------------------------------------------------


class ActionSerializer(serializers.ModelSerializer):
    """An action in a list."""

    url = serializers.HyperlinkedIdentityField(view_name="api:action-detail")
    email = EmailSummarySerializer(read_only=True, allow_null=True)
    assignee = MemberSummarySerializer(read_only=True, allow_null=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Action
        fields = [
            "id",
            "url",
            "type",
            "status",
            "priority",
            "confidence",
            "source",
            "email",
            "assignee",
            "run",
            "attempts",
            "created_by",
            "created_at",
            "updated_at",
            "status_changed_at",
            "scheduled_for",
            "next_attempt_at",
        ]
        read_only_fields = fields


class ActionLinksSerializer(serializers.Serializer):
    """Where to go from here: the action itself, and each change the requesting user may make now."""

    self = serializers.URLField()
    approve = serializers.URLField(required=False)
    reject = serializers.URLField(required=False)
    cancel = serializers.URLField(required=False)
    undo = serializers.URLField(required=False)
    retry = serializers.URLField(required=False)


# The states a person may retry from: retrying sends the action straight to the queue.
RETRYABLE = frozenset({ActionStatus.FAILED, ActionStatus.DEAD})


class ActionDetailSerializer(ActionSerializer):
    """One action: what it does, what running it did, its approvals and what may be done with it now."""

    error = serializers.CharField(source="last_error", read_only=True)
    has_undo_data = serializers.SerializerMethodField(help_text="Whether running it left what undoing it needs.")
    approvals = ApprovalSummarySerializer(many=True, read_only=True)
    links = serializers.SerializerMethodField()

    class Meta(ActionSerializer.Meta):
        fields = [
            *ActionSerializer.Meta.fields,
            "rationale",
            "params",
            "context",
            "result",
            "error",
            "has_undo_data",
            "approvals",
            "links",
        ]
        read_only_fields = fields

    def get_has_undo_data(self, action: Action) -> bool:
        return bool(action.undo_data)

    @extend_schema_field(ActionLinksSerializer)
    def get_links(self, action: Action) -> dict[str, str]:
        request = self.context["request"]

        def url(name: str) -> str:
            return reverse(f"api:action-{name}", args=[action.pk], request=request)

        links = {"self": url("detail")}
        rights = _rights(self.context)
        if any(rights.may_vote_now(approval) for approval in action.approvals.all()):
            links.update(approve=url("approve"), reject=url("reject"))
        if access.may_change_action(request.user, action):
            if can_transition(action.status, ActionStatus.CANCELLED):
                links["cancel"] = url("cancel")
            if action.status == ActionStatus.SUCCEEDED and get_handler(action.type).undoable:
                links["undo"] = url("undo")
            if action.status in RETRYABLE:
                links["retry"] = url("retry")
        return links


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


class ProposeSerializer(serializers.Serializer):
    """A person's (or a program's) proposal; it waits in `proposed` for routing or review."""

    type = serializers.ChoiceField(choices=ActionType.choices)
    email = serializers.PrimaryKeyRelatedField(
        queryset=Email.objects.none(), required=False, allow_null=True, help_text="The id of the email it is about."
    )
    params = serializers.DictField(required=False, default=dict, help_text="The type's parameters.")
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.NORMAL)
    confidence = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1, default=None)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    idempotency_key = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=Action._meta.get_field("idempotency_key").max_length,
        help_text="Proposing again with the same key returns the action already made.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        # Only emails the proposer may see: any other id is "not found", as elsewhere.
        if request is not None:
            self.fields["email"].queryset = access.emails_for(request.user)

    def validate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        # PostgreSQL's jsonb cannot store the NUL character; refuse it here, not with a 500 there.
        if _holds_nul(params):
            raise serializers.ValidationError("Null characters are not allowed.")
        return params

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        # Every problem with the parameters at once, each under its own name.
        problems: dict[str, list[str]] = {}
        for field, why in validation_errors(data["type"], data["params"]):
            problems.setdefault(field, []).append(why)
        if problems:
            raise serializers.ValidationError({"params": problems})
        return data
