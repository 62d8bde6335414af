"""/api/v1/emails/: the inbound mail a user may see (list, detail), and taking in new mail (POST).

A member or an approver sees the emails of the actions they may see
(access.emails_for); in an email they see only those actions, and its
thread parent only when they may see that too.
"""

from __future__ import annotations

import django_filters
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import parsers, permissions, serializers
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from actions.api import access
from actions.api.filters import DateTimeRangeFilter
from actions.api.inbound import CanAddEmail, InboundEmailSerializer, InboundResultSerializer, MIMEParser, receive
from actions.api.openapi import ERROR
from actions.api.viewsets import VisibleViewSet
from actions.models import Attachment, Automated, Email, EmailSource, EmailStatus, Priority, ProcessingRun


class AttachmentSerializer(serializers.ModelSerializer):
    """A file that came with the email: its name, type and size (the bytes stay in storage)."""

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "sha256", "content_id"]
        read_only_fields = fields


class EmailSerializer(serializers.ModelSerializer):
    """An email in a list: who sent what, where it stands, without its bodies."""

    parent = serializers.IntegerField(
        source="visible_parent", read_only=True, allow_null=True, help_text="The email of this thread it answers."
    )
    attachment_count = serializers.SerializerMethodField()
    actions = serializers.SerializerMethodField(help_text="The ids of its actions that you may see.")

    class Meta:
        model = Email
        fields = [
            "id",
            "mailbox",
            "message_id",
            "from_address",
            "from_name",
            "subject",
            "received_at",
            "status",
            "category",
            "priority",
            "automated",
            "source",
            "size",
            "parent",
            "attachment_count",
            "actions",
        ]
        read_only_fields = fields

    def get_attachment_count(self, email: Email) -> int:
        return len(email.attachments.all())

    def get_actions(self, email: Email) -> list[int]:
        return [action.pk for action in email.visible_actions]


class EmailDetailSerializer(EmailSerializer):
    """One email: its headers, bodies, attachments, thread and what became of it."""

    headers = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2),
        read_only=True,
        help_text="Every header as a [name, value] pair, in order.",
    )
    to = serializers.ListField(child=serializers.CharField(), read_only=True)
    cc = serializers.ListField(child=serializers.CharField(), read_only=True)
    references = serializers.ListField(child=serializers.CharField(), read_only=True)
    attachments = AttachmentSerializer(many=True, read_only=True)
    runs = serializers.SerializerMethodField(help_text="The ids of its processing runs, newest first.")

    class Meta(EmailSerializer.Meta):
        fields = [
            *EmailSerializer.Meta.fields,
            "to",
            "cc",
            "in_reply_to",
            "references",
            "headers",
            "text_body",
            "html_body",
            "status_reason",
            "summary",
            "draft_reply",
            "escalation_level",
            "archived_at",
            "completed_at",
            "created_at",
            "attachments",
            "runs",
        ]
        read_only_fields = fields

    def get_runs(self, email: Email) -> list[int]:
        return [run.pk for run in email.runs.all()]


class EmailFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=EmailStatus.choices)
    mailbox = django_filters.CharFilter(lookup_expr="iexact")
    category = django_filters.CharFilter(lookup_expr="iexact")
    priority = django_filters.MultipleChoiceFilter(choices=Priority.choices)
    source = django_filters.ChoiceFilter(choices=EmailSource.choices)
    received = DateTimeRangeFilter(
        field_name="received_at", label="Received from (received_after) and until (received_before)."
    )
    automated = django_filters.BooleanFilter(
        method="filter_automated", label="Sent by a machine (auto-reply, bounce, list, our own mail) or not."
    )

    class Meta:
        model = Email
        fields = ["status", "mailbox", "category", "priority", "source", "received", "automated"]

    def filter_automated(self, queryset: QuerySet[Email], name: str, value: bool) -> QuerySet[Email]:
        return queryset.exclude(automated=Automated.NO) if value else queryset.filter(automated=Automated.NO)


@extend_schema_view(
    list=extend_schema(
        summary="List the emails you may see", description="Newest first; `search` looks in subject and sender."
    ),
    retrieve=extend_schema(summary="One email, with headers, bodies and attachments"),
)
class EmailViewSet(VisibleViewSet):
    visible = staticmethod(access.emails_for)
    serializer_class = EmailSerializer
    detail_serializer_class = EmailDetailSerializer
    filterset_class = EmailFilter
    search_fields = ["subject", "from_address", "from_name"]
    ordering_fields = ["received_at", "priority", "id"]
    ordering = ["-received_at"]
    parser_classes = [parsers.JSONParser, MIMEParser]

    def get_permissions(self):
        if self.action == "create":
            return [permissions.IsAuthenticated(), CanAddEmail()]
        return super().get_permissions()

    def shape(self, queryset: QuerySet[Email]) -> QuerySet[Email]:
        user = self.request.user
        parent = access.emails_for(user).filter(pk=OuterRef("parent_id")).values("pk")[:1]
        queryset = queryset.annotate(visible_parent=Subquery(parent)).prefetch_related(
            "attachments",
            Prefetch(
                "actions",
                queryset=access.actions_for(user).only("pk", "email_id").order_by("pk"),
                to_attr="visible_actions",
            ),
        )
        if self.action == "list":
            return queryset.defer("raw", "text_body", "html_body", "headers")
        runs = ProcessingRun.objects.only("pk", "email_id").order_by("-created_at", "-id")
        return queryset.defer("raw").prefetch_related(Prefetch("runs", queryset=runs))

    @extend_schema(
        summary="Take in one message (raw MIME or JSON)",
        description=(
            "Post a whole message as `message/rfc822` (the mailbox in `?mailbox=`), or JSON with either `raw` "
            "or the message's parts. 201: stored and its run started; 200: stored before; 202: kept but "
            "quarantined (`reason` says why); 413: over MAX_MESSAGE_BYTES."
        ),
        request={"application/json": InboundEmailSerializer, "message/rfc822": OpenApiTypes.BINARY},
        parameters=[
            OpenApiParameter(
                "mailbox", str, description="The mailbox a raw message arrived in (default DEFAULT_MAILBOX)."
            )
        ],
        responses={
            200: InboundResultSerializer,
            201: InboundResultSerializer,
            202: InboundResultSerializer,
            413: ERROR,
        },
    )
    def create(self, request, *args, **kwargs) -> Response:
        return receive(request)


router = SimpleRouter()
router.register("emails", EmailViewSet, basename="email")
urlpatterns = router.urls
