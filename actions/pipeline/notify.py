"""Telling people about urgent mail at once: the members on duty by email, and Slack where configured."""

from __future__ import annotations

import logging

from django.conf import settings

from actions.models import Email, Priority, ProcessingRun
from integrations import chat, outbox
from integrations.errors import IntegrationError
from teams.hierarchy import on_duty
from teams.notices import build_urgent_notice

logger = logging.getLogger(__name__)


def urgent_message_id(run: ProcessingRun) -> str:
    # One notice per run, however often the notify step is retried.
    return f"<mailroom.run{run.pk}.urgent@{settings.MESSAGE_ID_DOMAIN}>"


def notify_urgent(email: Email, run: ProcessingRun) -> list[str]:
    """Notify the people on duty when the email is urgent; return the log lines of what was done."""
    if email.priority < Priority.URGENT:
        return ["Not urgent: nobody to notify."]
    lines = []
    members = [member for member in on_duty() if member.user.email]
    actions = list(run.actions.order_by("pk"))
    if members:
        notice = build_urgent_notice(email, members, actions=actions)
        message = outbox.store_email(notice, message_id=urgent_message_id(run))
        outbox.deliver_soon(message)
        lines.append(f"Urgent notice mailed to {', '.join(str(member) for member in members)}.")
    else:
        lines.append("Urgent, but nobody is on duty or reachable to notify by email.")
    try:
        posted = chat.post_urgent(email, actions)
    except IntegrationError as exc:
        # A Slack failure is recorded, not fatal: the notice by email stands on its own.
        logger.warning("Slack notice for run %s failed: %s", run.pk, exc)
        lines.append(f"Slack notice failed: {exc}")
    else:
        if posted["posted"]:
            lines.append("Posted to Slack.")
    return lines
