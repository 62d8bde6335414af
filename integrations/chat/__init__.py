"""Chat: urgent notices and escalations posted to the team's Slack channel.

`chat_backend()` picks the backend from settings: a bot (SLACK_BOT_TOKEN and
SLACK_CHANNEL, chat.postMessage) first, else an incoming webhook
(SLACK_WEBHOOK_URL), else NoChat, whose posts do nothing. The `post_*`
functions build the Block Kit message and post it through that backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from integrations.chat.base import ChatBackend, NoChat
from integrations.chat.blocks import ChatNotice, escalation_notice, urgent_notice
from integrations.chat.slack import SlackBot, SlackWebhook
from integrations.errors import Unavailable

if TYPE_CHECKING:
    from collections.abc import Iterable

    from actions.models import Action, Email
    from teams.models import TeamMember

__all__ = ["ChatBackend", "ChatNotice", "NoChat", "SlackBot", "SlackWebhook", "chat_backend", "slack_configured"]


def slack_configured() -> bool:
    """Whether a Slack bot token or webhook is set (the bot also needs SLACK_CHANNEL)."""
    return bool(settings.SLACK_BOT_TOKEN or settings.SLACK_WEBHOOK_URL)


def chat_backend() -> ChatBackend:
    """The configured chat backend: the Slack bot, else the Slack webhook, else NoChat."""
    timeout = settings.INTEGRATION_TIMEOUT_SECONDS
    if settings.SLACK_BOT_TOKEN:
        if not settings.SLACK_CHANNEL:
            raise Unavailable(
                "SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not: name the channel the bot posts to "
                "(its ID, such as C0123456789, or #name) and invite the bot there.",
                capability=ChatBackend.capability,
            )
        return SlackBot(
            settings.SLACK_BOT_TOKEN, settings.SLACK_CHANNEL, api_url=settings.SLACK_API_URL, timeout=timeout
        )
    if settings.SLACK_WEBHOOK_URL:
        return SlackWebhook(settings.SLACK_WEBHOOK_URL, timeout=timeout)
    return NoChat()


def post_urgent(email: Email, actions: Iterable[object] = ()) -> dict[str, Any]:
    """Post the urgent-mail notice for `email` and its proposed actions; what was posted. IntegrationError."""
    return chat_backend().post(urgent_notice(email, actions))


def post_escalation(
    action: Action,
    chain: list[TeamMember],
    *,
    level: int,
    reason: str,
    escalated_from: TeamMember | str | None = None,
    undo: bool = False,
) -> dict[str, Any]:
    """Post that the action's issue reached `level` (undo=True: was taken back from it); what was posted.

    Returns {"posted": False, ...} when no chat is configured; raises
    IntegrationError (transient or permanent) when Slack refuses or is away.
    """
    notice = escalation_notice(action, chain, level=level, reason=reason, escalated_from=escalated_from, undo=undo)
    return chat_backend().post(notice)
