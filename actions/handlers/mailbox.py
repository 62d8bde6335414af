"""Handlers for the email's place and weight in the mailbox: archive_email and escalate_issue.

Each change is made once per action (actions.handlers.changes). Archiving
also moves the message in the mailbox it came from, through the configured
mailbox backend (IMAP MOVE), and undo moves it back. Undo puts
the email back only if nobody moved it since: it compares the value this
action left with the one there now, and refuses, saying why, when they differ.
"""

from __future__ import annotations

from typing import Any, Literal

from django.utils import timezone
from pydantic import Field

from actions.handlers import register
from actions.handlers.base import ActionFailed, Handler, Outcome, Params, UndoRefused, email_of
from actions.handlers.changes import change_once, deliver_notice, iso, moment, post_once, recorded, store_notice
from actions.models import Action, ActionType, AuditEntry, Email, Priority
from integrations import chat
from integrations.mailbox import mailbox_backend
from teams.hierarchy import escalation_chain
from teams.models import TeamMember
from teams.notices import build_escalation_notice

# --- archive_email --------------------------------------------------------------

# The audit event that records the move on the mail server, once per action.
MOVED_ON_SERVER = "email.archived_in_mailbox"


class ArchiveEmailParams(Params):
    pass


@register
class ArchiveEmail(Handler):
    """Archive the email: Mailroom's flag, and the message moved in its mailbox (IMAP MOVE); undo brings both back."""

    type = ActionType.ARCHIVE_EMAIL
    params = ArchiveEmailParams
    capability = "mailbox"
    undoable = True

    def execute(self, action: Action, params: ArchiveEmailParams) -> Outcome:
        # The server first: a message that cannot be moved leaves the flag unset, and nothing to undo.
        in_mailbox = _archive_in_mailbox(action, email_of(action))

        def archive() -> dict[str, Any]:
            email = email_of(action, for_update=True)
            archived_at = email.archived_at or timezone.now()
            Email.objects.filter(pk=email.pk).update(archived_at=archived_at)
            return {
                "email_id": email.pk,
                "archived_at": iso(archived_at),
                "already_archived": email.archived_at is not None,
            }

        archived = {**change_once(action, "email.archived", archive), "mailbox": in_mailbox}
        return Outcome(result=archived, undo_data=archived)

    def undo(self, action: Action, params: ArchiveEmailParams) -> dict[str, Any]:
        # The flag first: if undo is refused there, the message has not moved; if moving fails, the flag rolls back.
        details = _unarchive_flag(action)
        in_mailbox = action.undo_data.get("mailbox") or {}
        if in_mailbox.get("moved"):
            backend = mailbox_backend()
            if backend.name != in_mailbox.get("backend"):
                raise UndoRefused(
                    f"The message was archived through {in_mailbox.get('backend')}, and MAILBOX_BACKEND is now "
                    f"{backend.name}: move it back in the mailbox by hand."
                )
            email = Email.objects.get(pk=recorded(action, "email_id"))
            details["mailbox"] = {"backend": backend.name, "restored": True, **backend.restore(email, in_mailbox)}
        return details


def _archive_in_mailbox(action: Action, email: Email) -> dict[str, Any]:
    """Move the email's message to the archive in its mailbox once per action; what happened, or why nothing did."""
    backend = mailbox_backend()
    why = backend.why_not(email)
    if why:
        return {"backend": backend.name, "moved": False, "why": why}
    done = AuditEntry.objects.for_object(action).filter(event=MOVED_ON_SERVER).values_list("details", flat=True).first()
    if done is not None:
        return done  # a redelivered action: moved already
    # The move talks to the server outside any transaction; change_once records it (or
    # finds that a concurrent run did). A run cut short in between finds the message in
    # the archive and says so, instead of failing.
    moved = {"moved": True, **backend.archive(email), "backend": backend.name}
    return change_once(action, MOVED_ON_SERVER, lambda: moved)


def _unarchive_flag(action: Action) -> dict[str, Any]:
    """Clear the archived flag this action set, unless it was set before or changed since."""
    if action.undo_data.get("already_archived"):
        return {"email_id": action.undo_data.get("email_id"), "unarchived": False, "why": "it was archived before"}
    email_id = recorded(action, "email_id")
    back = Email.objects.filter(pk=email_id, archived_at=moment(recorded(action, "archived_at")))
    if not back.update(archived_at=None):
        raise UndoRefused("The email was taken out of the archive or archived again since; there is nothing to undo.")
    return {"email_id": email_id, "unarchived": True}


# --- escalate_issue -------------------------------------------------------------

PRIORITY_NAMED = {"high": Priority.HIGH, "urgent": Priority.URGENT}


class EscalateIssueParams(Params):
    reason: str = Field(min_length=1, max_length=2000)
    priority: Literal["high", "urgent"] = "urgent"


@register
class EscalateIssue(Handler):
    """Raise the email's priority and escalation level, and tell the escalation chain by email and in chat."""

    type = ActionType.ESCALATE_ISSUE
    params = EscalateIssueParams
    # The escalation itself is Mailroom's; telling people goes out by mail and to chat, either of which
    # may be skipped (nobody above, no Slack), and only what was called counts on a circuit.
    capability = "local"
    also_uses = ("mail", "chat")
    undoable = True

    def execute(self, action: Action, params: EscalateIssueParams) -> Outcome:
        email_of(action)

        def escalate() -> dict[str, Any]:
            email = email_of(action, for_update=True)
            # Escalating never lowers a priority: "high" on an urgent email leaves it urgent.
            priority = max(email.priority, PRIORITY_NAMED[params.priority])
            level = email.escalation_level + 1
            Email.objects.filter(pk=email.pk).update(priority=priority, escalation_level=level)
            chain = escalation_chain(action.assignee)
            if chain:
                try:
                    notice = build_escalation_notice(
                        action, chain, level=level, reason=params.reason, escalated_from=action.assignee
                    )
                except ValueError as exc:
                    raise ActionFailed(str(exc)) from None
                store_notice(action, "escalation", notice)
            return {
                "email_id": email.pk,
                "priority": priority,
                "previous_priority": email.priority,
                "escalation_level": level,
                "previous_level": email.escalation_level,
                "notified_ids": [member.pk for member in chain],
                "notified": [member.email for member in chain],
            }

        escalated = change_once(action, "email.escalated", escalate)
        result = {
            **escalated,
            "priority": Priority(escalated["priority"]).label,
            "previous_priority": Priority(escalated["previous_priority"]).label,
            "notice": deliver_notice(action, "escalation"),
            "chat": post_once(
                action,
                "escalation.chat",
                lambda: chat.post_escalation(
                    action,
                    _members(escalated["notified_ids"]),
                    level=escalated["escalation_level"],
                    reason=params.reason,
                    escalated_from=action.assignee,
                ),
            ),
        }
        if not escalated["notified"]:
            result["note"] = "Nobody above to notify: the escalation chain is empty."
        return Outcome(result=result, undo_data=escalated)

    def undo(self, action: Action, params: EscalateIssueParams) -> dict[str, Any]:
        email_id, level = recorded(action, "email_id"), recorded(action, "escalation_level")
        previous_level = recorded(action, "previous_level")
        lowered = Email.objects.filter(pk=email_id, escalation_level=level).update(
            priority=recorded(action, "previous_priority"), escalation_level=previous_level
        )
        if not lowered:
            now = Email.objects.filter(pk=email_id).values_list("escalation_level", flat=True).first()
            raise UndoRefused(
                f"The email's escalation changed since (level {now} now, {level} after this action); "
                "undo the later escalation first."
            )
        # The people told of the escalation are told it was taken back, those still on the team.
        told = _members(action.undo_data.get("notified_ids") or [])
        taken_back = {
            "level": level,
            "reason": "The escalation was undone.",
            "escalated_from": action.assignee,
            "undo": True,
        }
        notice = None
        if told:
            try:
                message = build_escalation_notice(action, told, **taken_back)
            except ValueError as exc:
                raise UndoRefused(str(exc)) from None
            store_notice(action, "escalation-undo", message)
            notice = deliver_notice(action, "escalation-undo")
        posted = post_once(action, "escalation-undo.chat", lambda: chat.post_escalation(action, told, **taken_back))
        return {"email_id": email_id, "escalation_level": previous_level, "notice": notice, "chat": posted}


def _members(ids: list[int]) -> list[TeamMember]:
    """The team members with these ids, in that order, leaving out those no longer on the team."""
    by_id = TeamMember.objects.select_related("user").in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]
