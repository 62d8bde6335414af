"""Inbound mail for webhooks (POST /api/v1/emails/), as a raw MIME message or as JSON.

Both forms end in the same place as IMAP and imported files: ingest_message.
The JSON form is turned into a MIME message first, so one parser reads all
mail. A message without a Message-ID gets one derived from its bytes, so a
webhook that posts the same message twice stores it once.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from django.conf import settings
from rest_framework import parsers, permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from actions.intake.store import IngestResult, ingest_message
from actions.models import EmailSource, EmailStatus


class MIMEParser(parsers.BaseParser):
    """A raw message posted as message/rfc822, kept as bytes."""

    media_type = "message/rfc822"

    def parse(self, stream, media_type=None, parser_context=None) -> bytes:
        if stream is None:
            return b""
        # One byte over the limit is enough to know it is too large.
        return stream.read(settings.MAX_MESSAGE_BYTES + 1)


class CanAddEmail(permissions.BasePermission):
    message = "You need the permission to add emails (actions.add_email)."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("actions.add_email"))


class InboundEmailSerializer(serializers.Serializer):
    """The JSON form: either `raw` (a whole MIME message as text) or the message's parts."""

    mailbox = serializers.CharField(required=False, max_length=254)
    raw = serializers.CharField(required=False, trim_whitespace=False)
    vars()["from"] = serializers.CharField(required=False, max_length=998)
    to = serializers.ListField(child=serializers.CharField(max_length=998), required=False, default=list)
    cc = serializers.ListField(child=serializers.CharField(max_length=998), required=False, default=list)
    subject = serializers.CharField(required=False, allow_blank=True, default="", max_length=998)
    text = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    html = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    message_id = serializers.CharField(required=False, max_length=998)
    in_reply_to = serializers.CharField(required=False, max_length=998)
    references = serializers.ListField(child=serializers.CharField(max_length=998), required=False, default=list)
    date = serializers.DateTimeField(required=False)
    headers = serializers.DictField(child=serializers.CharField(max_length=2000), required=False, default=dict)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "raw" in data:
            return data
        if not data.get("from"):
            raise ValidationError({"from": ["Give the sender, or the whole message as raw."]})
        if not (data["text"] or data["html"]):
            raise ValidationError({"text": ["Give a text or html body."]})
        return data


def message_from_json(data: dict[str, Any]) -> bytes:
    """Build the MIME message the JSON describes; ValidationError naming the field a value breaks."""
    if "raw" in data:
        return data["raw"].encode("utf-8", "surrogateescape")
    message = EmailMessage(policy=SMTP)
    fields = [
        ("From", "from", data["from"]),
        ("To", "to", ", ".join(data["to"])),
        ("Cc", "cc", ", ".join(data["cc"])),
        ("Subject", "subject", data["subject"]),
        ("Message-ID", "message_id", data.get("message_id", "")),
        ("In-Reply-To", "in_reply_to", data.get("in_reply_to", "")),
        ("References", "references", " ".join(data["references"])),
        *((name, f"headers.{name}", value) for name, value in data["headers"].items()),
    ]
    if data.get("date"):
        fields.append(("Date", "date", format_datetime(data["date"])))
    for header, field, value in fields:
        if not value:
            continue
        try:
            message[header] = value
        except (ValueError, TypeError) as exc:
            raise ValidationError({field: [f"Not usable in a mail header: {exc}"]}) from None
    message.set_content(data["text"] or " ")
    if data["html"]:
        message.add_alternative(data["html"], subtype="html")
    try:
        return message.as_bytes()
    except (ValueError, TypeError) as exc:
        raise ValidationError({"headers": [f"The message cannot be written: {exc}"]}) from None


class InboundResultSerializer(serializers.Serializer):
    """What became of a posted message."""

    id = serializers.IntegerField(help_text="The stored email.")
    mailbox = serializers.CharField()
    message_id = serializers.CharField()
    status = serializers.ChoiceField(choices=EmailStatus.choices)
    created = serializers.BooleanField(help_text="False when the message was stored before.")
    run = serializers.IntegerField(allow_null=True, help_text="The processing run it started (or its latest).")
    reason = serializers.CharField(required=False, help_text="Why it was quarantined (202 only).")


def receive(request) -> Response:
    """Take one inbound message: 201 stored, 200 already stored, 202 kept but quarantined, 413 too large."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > settings.MAX_MESSAGE_BYTES:
        return _too_large(int(length))
    data = request.data
    if isinstance(data, bytes):
        raw, mailbox = data, _query_mailbox(request)
        if not raw.strip():
            raise ValidationError({"message": ["The posted message is empty."]})
    else:
        serializer = InboundEmailSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        raw = message_from_json(serializer.validated_data)
        mailbox = serializer.validated_data.get("mailbox") or settings.DEFAULT_MAILBOX
    if len(raw) > settings.MAX_MESSAGE_BYTES:
        return _too_large(len(raw))
    return _answer(ingest_message(raw, mailbox=mailbox[:254], source=EmailSource.API))


def _query_mailbox(request) -> str:
    """The ?mailbox= of a raw post, checked as the JSON form's field is (PostgreSQL refuses a NUL)."""
    try:
        return (
            InboundEmailSerializer()
            .fields["mailbox"]
            .run_validation(request.query_params.get("mailbox") or settings.DEFAULT_MAILBOX)
        )
    except ValidationError as exc:
        raise ValidationError({"mailbox": exc.detail}) from None


def _answer(result: IngestResult) -> Response:
    email = result.email
    body = {
        "id": email.pk,
        "mailbox": email.mailbox,
        "message_id": email.message_id,
        "status": email.status,
        "created": result.created,
        # An email stored before has its latest run; one stored now, the run this call started.
        "run": result.run.pk if result.run else email.runs.order_by("-pk").values_list("pk", flat=True).first(),
    }
    if result.quarantined:
        body["reason"] = email.status_reason
    if not result.created:
        return Response(body, status=status.HTTP_200_OK)
    return Response(body, status=status.HTTP_202_ACCEPTED if result.quarantined else status.HTTP_201_CREATED)


def _too_large(size: int) -> Response:
    return Response(
        {"detail": f"The message is {size:,} bytes; the limit is {settings.MAX_MESSAGE_BYTES:,} (MAX_MESSAGE_BYTES)."},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )
