"""Chat notices: Slack through an incoming webhook (Block Kit), when SLACK_WEBHOOK_URL is set."""

from __future__ import annotations

from django.conf import settings

from integrations.http import post_json


def slack_configured() -> bool:
    return bool(settings.SLACK_WEBHOOK_URL)


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters; anything from an email is escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_notice(title: str, lines: list[str], *, link: str = "") -> None:
    """Post a Block Kit message to the configured Slack webhook; IntegrationError when Slack refuses."""
    body = "\n".join(_escape(line) for line in lines)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": body[:2900] or " "}},
    ]
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Open in Mailroom"}, "url": link}
                ],
            }
        )
    # `text` is what notifications and old clients show.
    post_json(settings.SLACK_WEBHOOK_URL, {"text": f"{title}\n{body}"[:3000], "blocks": blocks})
