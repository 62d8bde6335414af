"""What a chat backend is: it posts a notice and says where it went; NoChat when none is configured."""

from __future__ import annotations

from typing import Any

from integrations.base import Backend, Health
from integrations.chat.blocks import ChatNotice

NOT_CONFIGURED = "Chat is not configured: set SLACK_BOT_TOKEN and SLACK_CHANNEL, or SLACK_WEBHOOK_URL."


class ChatBackend(Backend):
    """Posts notices (urgent mail, escalations) to the team's chat channel."""

    capability = "chat"

    def post(self, notice: ChatNotice) -> dict[str, Any]:
        """Post the notice; return what was posted (posted, backend, channel and ts when known).

        IntegrationError when the chat service refuses or cannot be reached.
        """
        raise NotImplementedError

    def posted(self, *, channel: str | None = None, ts: str | None = None) -> dict[str, Any]:
        return {"posted": True, "backend": self.name, "channel": channel, "ts": ts}


class NoChat(ChatBackend):
    """No chat service configured: posting does nothing, and says so."""

    name = "none"

    def health(self) -> Health:
        return self.healthy("Chat is not configured: nothing to check.")

    def post(self, notice: ChatNotice) -> dict[str, Any]:
        return {"posted": False, "backend": self.name, "detail": NOT_CONFIGURED}
