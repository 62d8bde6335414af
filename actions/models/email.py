"""An inbound message and its attachments."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.html import strip_tags

from actions.models.action import Priority


class EmailStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    ANALYSED = "analysed", "Analysed"
    PROCESSED = "processed", "Processed"
    REVIEW = "review", "Needs review"
    IGNORED = "ignored", "Ignored"
    QUARANTINED = "quarantined", "Quarantined"


class Automated(models.TextChoices):
    """Mail that a machine sent: never answered automatically (RFC 3834)."""

    NO = "", "No"
    AUTO_REPLY = "auto_reply", "Auto-reply"
    BOUNCE = "bounce", "Bounce"
    MAILING_LIST = "list", "Mailing list"
    OWN = "own", "Our own mail"


class EmailSource(models.TextChoices):
    IMAP = "imap", "IMAP"
    API = "api", "API"
    IMPORT = "import", "Import"
    DEMO = "demo", "Demo"


class Email(models.Model):
    """One message as it arrived in a mailbox.

    A message is identified by its Message-ID within its mailbox, so the same
    message fetched twice (or posted twice to the API) is stored once.
    """

    mailbox = models.CharField(max_length=254, help_text="The address or name of the mailbox it arrived in.")
    message_id = models.CharField("Message-ID", max_length=998)
    in_reply_to = models.CharField("In-Reply-To", max_length=998, blank=True)
    references = models.JSONField(default=list, blank=True, help_text="Message-IDs from the References header.")
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replies",
        help_text="The earlier message of this thread that it answers, when we have it.",
    )
    from_address = models.EmailField("from", max_length=254, blank=True)
    from_name = models.CharField(max_length=254, blank=True)
    to = models.JSONField(default=list, blank=True)
    cc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    text_body = models.TextField(blank=True)
    html_body = models.TextField("HTML body", blank=True)
    headers = models.JSONField(default=list, blank=True, help_text="All headers as [name, value] pairs, in order.")
    raw = models.BinaryField(blank=True, default=b"", editable=False)
    size = models.PositiveIntegerField(default=0, help_text="Size of the raw message in bytes.")
    source = models.CharField(max_length=16, choices=EmailSource.choices, default=EmailSource.IMPORT)
    # Where an IMAP message sits on its server, for archiving by MOVE (and moving back).
    imap_folder = models.CharField("IMAP folder", max_length=255, blank=True)
    imap_uid = models.PositiveBigIntegerField("IMAP UID", null=True, blank=True)
    imap_uidvalidity = models.PositiveBigIntegerField("IMAP UIDVALIDITY", null=True, blank=True)
    automated = models.CharField(
        max_length=16,
        choices=Automated.choices,
        default=Automated.NO,
        blank=True,
        help_text="Auto-replies, bounces, mailing lists and our own mail are never answered automatically.",
    )
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=EmailStatus.choices, default=EmailStatus.RECEIVED)
    status_reason = models.TextField(blank=True, help_text="Why it was ignored, quarantined or needs review.")
    summary = models.TextField(blank=True, help_text="The analysis' summary.")
    draft_reply = models.TextField(blank=True, help_text="The analysis' draft reply, if it wrote one.")
    category = models.CharField(max_length=64, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    escalation_level = models.PositiveSmallIntegerField(default=0, help_text="0 unless escalated.")
    archived_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When it was marked done.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "message_id"], name="email_unique_per_mailbox"),
        ]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="email_status_received"),
            models.Index(fields=["mailbox", "-received_at"], name="email_mailbox_received"),
            models.Index(fields=["in_reply_to"], name="email_in_reply_to"),
        ]

    def __str__(self) -> str:
        return self.subject or f"(no subject) from {self.from_address}"

    @property
    def sender(self) -> str:
        return f"{self.from_name} <{self.from_address}>" if self.from_name else self.from_address

    @property
    def plain_text(self) -> str:
        """The body as plain text: the text part, or the HTML part without its tags."""
        return self.text_body or strip_tags(self.html_body)


def _attachment_path(attachment: Attachment, filename: str) -> str:
    return f"attachments/{attachment.email_id}/{filename}"


class Attachment(models.Model):
    """A file that came with an email, stored with its real name and type."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    content_id = models.CharField("Content-ID", max_length=255, blank=True)
    file = models.FileField(upload_to=_attachment_path, max_length=500, blank=True)

    class Meta:
        ordering = ["email_id", "id"]

    def __str__(self) -> str:
        return self.filename


class ReviewItem(Email):
    """A message waiting for a person: the review queue in the admin."""

    class Meta:
        proxy = True
        verbose_name = "message to review"
        verbose_name_plural = "review queue"
