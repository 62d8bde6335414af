"""/api/v1/actions/: list, read and propose actions; approve, reject, cancel, undo and retry one.

Every change goes through the service layer (propose_action, decide,
cancel_action, undo_action, retry_action), which checks the move and writes
the audit entry with the acting user. Objects the user may not see are 404
(actions/api/access.py); changes they may not make are 403; a move the
action's state does not allow is 409 with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action as endpoint
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import ActionFilter
from actions.api.serializers import (
    RETRYABLE,
    ActionDetailSerializer,
    ActionSerializer,
    CommentSerializer,
    Conflict,
    DecisionRightsMixin,
    ErrorSerializer,
    ProposeSerializer,
    ReasonSerializer,
    refusals_as_conflicts,
)
from actions.api.viewsets import VisibleViewSet
from actions.executor import cancel_action, retry_action, undo_action
from actions.models import Action, ActionSource
from actions.proposals import InvalidProposal, propose_action
from approvals.decisions import decide, may_decide
from approvals.models import Approval, ApprovalStatus, Decision

# 400, 401, 403, 404 and 429 are documented for every operation by MailroomAutoSchema.
REFUSED = OpenApiResponse(ErrorSerializer, "You may see this action but not do this to it.")
CONFLICT = OpenApiResponse(ErrorSerializer, "The action's state does not allow this; the detail says why.")


def _change_schema(summary: str, request: Any = None) -> Callable:
    return extend_schema(
        summary=summary, request=request, responses={200: ActionDetailSerializer, 403: REFUSED, 409: CONFLICT}
    )


LIST_SKIPS = (
    *("params", "context", "rationale", "result", "undo_data", "last_error"),
    *(f"email__{name}" for name in ("raw", "text_body", "html_body", "headers", "to", "cc", "references")),
    *(f"email__{name}" for name in ("summary", "draft_reply", "status_reason")),
)


def with_related(actions: QuerySet[Action], *, detail: bool) -> QuerySet[Action]:
    """What the serializers read, fetched up front so a page costs the same whatever its size."""
    actions = actions.select_related("email", "assignee__user", "created_by")
    if not detail:
        # A list line shows none of these; an email's raw message and bodies can be megabytes each.
        return actions.defer(*LIST_SKIPS)
    approvals = Approval.objects.select_related("decided_by").prefetch_related("votes").order_by("level", "pk")
    return actions.prefetch_related(Prefetch("approvals", queryset=approvals))


@extend_schema_view(
    list=extend_schema(summary="Actions you may see, newest first"),
    retrieve=extend_schema(summary="One action, with its approvals and what you may do with it now"),
)
class ActionViewSet(DecisionRightsMixin, VisibleViewSet):
    """Actions proposed from email: what to do, their state, and what running them did."""

    visible = staticmethod(access.actions_for)
    serializer_class = ActionSerializer
    detail_serializer_class = ActionDetailSerializer
    filterset_class = ActionFilter
    search_fields = ["email__subject", "email__from_address", "rationale"]
    ordering_fields = ["created_at", "priority", "status"]
    ordering = ["-created_at", "-id"]
    # The schema reads the model from here; requests go through get_queryset.
    queryset = Action.objects.none()

    def shape(self, queryset: QuerySet[Action]) -> QuerySet[Action]:
        return with_related(queryset, detail=self.action != "list")

    def get_serializer_class(self):
        inputs = {
            "create": ProposeSerializer,
            "approve": CommentSerializer,
            "reject": CommentSerializer,
            "cancel": ReasonSerializer,
        }
        return inputs.get(self.action) or super().get_serializer_class()

    def _input(self) -> dict[str, Any]:
        serializer = self.get_serializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _answer(self, action: Action, code: int = status.HTTP_200_OK) -> Response:
        # Not through the user's queryset: a change may end their view of it (an undo
        # that gives the work back to someone else), and they may still see what they did.
        action = with_related(Action.objects, detail=True).get(pk=action.pk)
        return Response(ActionDetailSerializer(action, context=self.get_serializer_context()).data, status=code)

    @extend_schema(
        summary="Propose an action about an email",
        request=ProposeSerializer,
        responses={
            201: ActionDetailSerializer,
            200: OpenApiResponse(ActionDetailSerializer, "The action proposed before with this idempotency key."),
        },
    )
    def create(self, request, *args, **kwargs) -> Response:
        self.require("actions.add_action")
        data = self._input()
        if data["idempotency_key"]:
            earlier = Action.objects.filter(idempotency_key=data["idempotency_key"]).first()
            if earlier is not None:
                if earlier.created_by_id != request.user.pk and not self.get_queryset().filter(pk=earlier.pk).exists():
                    raise ValidationError({"idempotency_key": ["This key was used for another action."]})
                return self._answer(earlier)
        try:
            action = propose_action(
                data["type"],
                email=data.get("email"),
                params=data["params"],
                source=ActionSource.API,
                priority=data["priority"],
                confidence=data["confidence"],
                rationale=data["rationale"],
                idempotency_key=data["idempotency_key"],
                acting_user=request.user,
            )
        except InvalidProposal as exc:
            raise ValidationError({exc.field: [str(exc).removeprefix(f"{exc.field}: ")]}) from exc
        return self._answer(action, status.HTTP_201_CREATED)

    # --- Deciding its approval --------------------------------------------------------

    def _decide(self, decision: str) -> Response:
        action = self.get_object()
        comment = self._input()["comment"]
        # The newest level first: an escalated approval replaces the one before it.
        pending = list(action.approvals.filter(status=ApprovalStatus.PENDING).order_by("-level", "-pk"))
        if not pending:
            raise Conflict(f"Action {action.pk} has no approval waiting for a decision.")
        approval = next((approval for approval in pending if may_decide(self.request.user, approval)), None)
        if approval is None:
            raise PermissionDenied("You are not asked to decide this action's approval.")
        with refusals_as_conflicts():
            decide(approval, self.request.user, decision, comment=comment, via="api")
        return self._answer(action)

    @_change_schema("Approve the action's pending approval that is yours to decide", CommentSerializer)
    @endpoint(detail=True, methods=["post"])
    def approve(self, request, pk=None) -> Response:
        return self._decide(Decision.APPROVE)

    @_change_schema("Reject the action's pending approval that is yours to decide", CommentSerializer)
    @endpoint(detail=True, methods=["post"])
    def reject(self, request, pk=None) -> Response:
        return self._decide(Decision.REJECT)

    # --- Changing it ------------------------------------------------------------------

    def _change(self, change: Callable[[Action], object]) -> Response:
        action = self.get_object()
        if not access.may_change_action(self.request.user, action):
            raise PermissionDenied("Only an owner, or the member it is assigned to, may change this action.")
        with refusals_as_conflicts():
            change(action)
        return self._answer(action)

    @_change_schema("Cancel an action that has not run", ReasonSerializer)
    @endpoint(detail=True, methods=["post"])
    def cancel(self, request, pk=None) -> Response:
        reason = self._input()["reason"] or "cancelled through the API"
        return self._change(lambda action: cancel_action(action, acting_user=request.user, reason=reason))

    @_change_schema("Undo an action that succeeded")
    @endpoint(detail=True, methods=["post"])
    def undo(self, request, pk=None) -> Response:
        return self._change(lambda action: undo_action(action, acting_user=request.user))

    @_change_schema("Send a failed or dead action back to the queue")
    @endpoint(detail=True, methods=["post"])
    def retry(self, request, pk=None) -> Response:
        def retry(action: Action) -> None:
            # retry_action would queue any action the state machine lets it, a proposed
            # one included; only failed and dead ones are retried, never unapproved ones.
            if action.status not in RETRYABLE:
                state = action.get_status_display().lower()
                raise Conflict(f"Action {action.pk} is {state}; only failed or dead actions are retried.")
            retry_action(action, acting_user=request.user)

        return self._change(retry)


router = SimpleRouter()
router.register("actions", ActionViewSet, basename="action")
urlpatterns = router.urls
