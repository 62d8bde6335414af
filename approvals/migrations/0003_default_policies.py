"""The approval policies and confidence thresholds Mailroom ships with; edit them in the admin."""

from datetime import timedelta

from django.db import migrations

POLICIES = [
    {
        "name": "Forwarding outside the company",
        "action_type": "forward_email",
        "condition": "external_recipient",
        "approver_role": "lead",
        "timeout": timedelta(hours=48),
        "on_timeout": "escalate",
    },
    {
        "name": "Answering approval requests",
        "action_type": "approve_request",
        "condition": "always",
        "approver_role": "manager",
        "timeout": timedelta(hours=24),
        "on_timeout": "escalate",
    },
    {
        "name": "Low-confidence replies",
        "action_type": "send_reply",
        "condition": "confidence_below",
        "threshold": "0.8000",
        "approver_role": "lead",
        "timeout": timedelta(hours=24),
        "on_timeout": "reject",
    },
]

SENDS = {"send_reply", "forward_email", "approve_request", "follow_up"}
TYPES = [
    "send_reply", "forward_email", "create_task", "schedule_meeting", "set_reminder", "archive_email",
    "upload_file", "delegate_task", "mark_complete", "follow_up", "approve_request", "escalate_issue",
]


def add_defaults(apps, schema_editor):
    ApprovalPolicy = apps.get_model("approvals", "ApprovalPolicy")
    ConfidenceThreshold = apps.get_model("approvals", "ConfidenceThreshold")
    for policy in POLICIES:
        ApprovalPolicy.objects.get_or_create(name=policy["name"], defaults=policy)
    for action_type in TYPES:
        # Mail leaves the building: it needs more certainty to go unasked.
        auto, suggest = (0.95, 0.6) if action_type in SENDS else (0.85, 0.5)
        ConfidenceThreshold.objects.get_or_create(action_type=action_type, defaults={"auto": auto, "suggest": suggest})


class Migration(migrations.Migration):
    dependencies = [("approvals", "0002_approval_approvals_required_confidencethreshold_and_more")]

    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
