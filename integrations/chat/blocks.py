"""Block Kit messages for the chat channel: urgent notices and escalations, every stranger's word escaped.

Slack's mrkdwn reads `<...>` as links and mentions (`<!channel>` pings a whole
channel) and `&` as the start of an entity, so every value that comes from an
email, a model or a person is escaped before it joins our own formatting.
mrkdwn has no escape for `*`, `_` or `~`: emphasis in a subject may render,
but it cannot link, mention or pass for a button. Texts are held within
Slack's limits, which refuse the whole message when one block is too long.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse

from actions.models import Email, Priority
from teams.notices import action_facts, one_line

if TYPE_CHECKING:
    from actions.models import Action
    from teams.models import TeamMember

# Slack's limits (Block Kit reference): a header's text, a section's text, each of a section's fields,
# a button's label. The fallback text may be far longer, but Slack advises keeping it under 4,000.
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
BUTTON_CHARS = 75
TEXT_CHARS = 4000
ELLIPSIS = "…"


@dataclass(frozen=True)
class ChatNotice:
    """A message ready to post: the fallback `text` (notifications, old clients) and its Block Kit `blocks`."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """The body chat.postMessage and incoming webhooks both take."""
        # Nothing in a notice should unfold into a preview of some page an email pointed at.
        return {"text": self.text, "blocks": self.blocks, "unfurl_links": False, "unfurl_media": False}


def escape(text: object) -> str:
    """The text with Slack's three control characters (&, <, >) turned into entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters of escaped text, never cutting an entity (&amp;) in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def header(title: str) -> dict[str, Any]:
    # plain_text is shown as written (no links, no mentions), so it is clipped but not escaped.
    return {"type": "header", "text": {"type": "plain_text", "text": _clip_plain(one_line(title), HEADER_CHARS)}}


def section(markdown: str) -> dict[str, Any]:
    """A section of our own mrkdwn; the caller has escaped what it holds."""
    # verbatim: Slack does not turn bare URLs or #channel names in an email into links.
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(markdown, SECTION_CHARS), "verbatim": True}}


def field_section(labelled: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A section of up to ten "*Label*\\nvalue" fields, each value escaped; empty values are left out."""
    shown = [
        {"type": "mrkdwn", "text": clip(f"*{label}*\n{escape(value)}", FIELD_CHARS), "verbatim": True}
        for label, value in labelled
        if value
    ]
    return {"type": "section", "fields": shown[:10]}


def button(label: str, url: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": _clip_plain(label, BUTTON_CHARS)}, "url": url}
        ],
    }


def notice(title: str, summary: str, blocks: list[dict[str, Any]]) -> ChatNotice:
    """The message with its fallback text: the title and an escaped summary, which notifications show."""
    return ChatNotice(text=clip(f"{escape(one_line(title))}\n{summary}", TEXT_CHARS), blocks=blocks)


def urgent_notice(email: Email, actions: Iterable[object] = ()) -> ChatNotice:
    """The notice of urgent mail: who wrote, what it is about, what Mailroom proposes, and a link to the email."""
    title = f"Urgent: {one_line(email.subject) or '(no subject)'}"
    about = email.summary or email.plain_text[:300]
    lines = [f"From {escape(email.sender)}", escape(about.strip()), *(f"• {escape(action)}" for action in actions)]
    body = "\n".join(line for line in lines if line)
    link = settings.SITE_URL + reverse("admin:actions_email_change", args=[email.pk])
    return notice(title, body, [header(title), section(body), button("Open in Mailroom", link)])


def escalation_notice(
    action: Action,
    chain: list[TeamMember],
    *,
    level: int,
    reason: str,
    escalated_from: TeamMember | str | None = None,
    undo: bool = False,
) -> ChatNotice:
    """The notice that the action's issue reached `level` (or, with undo=True, was taken back from it)."""
    facts = action_facts(action)
    heading = f"De-escalated from level {level}" if undo else f"Escalated to level {level}"
    title = f"{heading}: {facts['email_subject'] or facts['action_label']}"
    reason_text = f"*Reason*\n{escape(reason.strip())}"
    blocks = [
        header(title),
        field_section(
            [
                ("Subject", facts["email_subject"]),
                ("From", facts["email_sender"]),
                ("Priority", _email_priority(action) or facts["priority"]),
                ("Action", facts["action_label"]),
            ]
        ),
        section(reason_text),
        section(_notified(chain, escalated_from)),
        button("Open in Mailroom", facts["action_url"]),
    ]
    return notice(title, escape(reason.strip()), blocks)


def _notified(chain: list[TeamMember], escalated_from: TeamMember | str | None) -> str:
    """Who the escalation goes to, who is kept informed, and whom it came from."""
    people = list(dict.fromkeys(chain))  # a chain can name someone twice; tell them once
    if not people:
        told = "*Notified*\nNobody: the escalation chain is empty."
    else:
        told = f"*Notified*\n{escape(people[0])}"
        if people[1:]:
            told += f" (copied: {', '.join(escape(member) for member in people[1:])})"
    if escalated_from:
        told += f"\nEscalated from {escape(escalated_from)}."
    return told


def _email_priority(action: Action) -> str:
    # The handler raises the priority with an UPDATE, so the email instance it holds may be stale.
    if action.email_id is None:
        return ""
    value = Email.objects.filter(pk=action.email_id).values_list("priority", flat=True).first()
    return Priority(value).label if value is not None else ""


def _clip_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS
