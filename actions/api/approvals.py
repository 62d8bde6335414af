"""/api/v1/approvals/: the approvals you may see (an approver: only theirs), and deciding one.

Deciding goes through approvals.decisions.decide, as the admin and the
emailed links do: one vote per approver, audited, and the action approved
or rejected when the approval is settled.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.decorators import action as endpoint
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import ApprovalFilter
from actions.api.serializers import (
    ApprovalDetailSerializer,
    ApprovalSerializer,
    DecisionRightsMixin,
    DecisionSerializer,
    ErrorSerializer,
    refusals_as_conflicts,
)
from actions.api.viewsets import VisibleViewSet
from approvals.decisions import decide
from approvals.models import Approval


@extend_schema_view(
    list=extend_schema(summary="Approvals you may see: all for an owner, those you are asked to decide otherwise"),
    retrieve=extend_schema(summary="One approval, with every vote cast on it"),
)
class ApprovalViewSet(DecisionRightsMixin, VisibleViewSet):
    """Requests for a person to decide an action."""

    visible = staticmethod(access.approvals_for)
    serializer_class = ApprovalSerializer
    detail_serializer_class = ApprovalDetailSerializer
    filterset_class = ApprovalFilter
    search_fields = ["action__email__subject"]
    ordering_fields = ["requested_at", "expires_at", "level", "status"]
    ordering = ["-requested_at", "-id"]
    # The schema reads the model from here; requests go through get_queryset.
    queryset = Approval.objects.none()

    def shape(self, queryset: QuerySet[Approval]) -> QuerySet[Approval]:
        return queryset.select_related("action", "decided_by", "approver_group").prefetch_related("votes__voter")

    def get_serializer_class(self):
        return DecisionSerializer if self.action == "decide" else super().get_serializer_class()

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        # Who may decide which, for the whole page in one go rather than a query per row.
        if page is not None:
            self.decision_rights.prefetch(page)
        return page

    @extend_schema(
        summary="Approve or reject an approval you are asked to decide",
        request=DecisionSerializer,
        responses={
            200: ApprovalDetailSerializer,
            403: OpenApiResponse(ErrorSerializer, "You may see this approval but are not asked to decide it."),
            409: OpenApiResponse(ErrorSerializer, "Already decided, or you have already voted; the detail says which."),
        },
    )
    @endpoint(detail=True, methods=["post"])
    def decide(self, request, pk=None) -> Response:
        approval = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        # decide() raises PermissionDenied (403) for someone not asked to decide it.
        with refusals_as_conflicts():
            decide(approval, request.user, data["decision"], comment=data["comment"], via="api")
        approval = self.get_queryset().get(pk=approval.pk)
        return Response(ApprovalDetailSerializer(approval, context=self.get_serializer_context()).data)


router = SimpleRouter()
router.register("approvals", ApprovalViewSet, basename="approval")
urlpatterns = router.urls
