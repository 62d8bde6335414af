"""Handlers for the email's place and weight in the mailbox: archive_email and escalate_issue.

Each change is made once per action (actions.handlers.changes). Undo puts
the email back only if nobody moved it since: it compares the value this
action left with the one there now, and refuses, saying why, when they differ.
"""

from __future__ import annotations

from typing import Any, Literal

from django.utils import timezone
from pydantic import Field

from actions.handlers import register
from actions.handlers.base import ActionFailed, Handler, Outcome, Params, UndoRefused, email_of
from actions.handlers.changes import change_once, deliver_notice, iso, moment, recorded, store_notice
from actions.models import Action, ActionType, Email, Priority
from teams.hierarchy import escalation_chain
from teams.models import TeamMember
from teams.notices import build_escalation_notice

# --- archive_email --------------------------------------------------------------


class ArchiveEmailParams(Params):
    pass


@register
class ArchiveEmail(Handler):
    """Move the email to the archive (a local flag); undo brings it back."""

    type = ActionType.ARCHIVE_EMAIL
    params = ArchiveEmailParams
    capability = "local"
    undoable = True

    def execute(self, action: Action, params: ArchiveEmailParams) -> Outcome:
        email_of(action)

        def archive() -> dict[str, Any]:
            email = email_of(action, for_update=True)
            archived_at = email.archived_at or timezone.now()
            Email.objects.filter(pk=email.pk).update(archived_at=archived_at)
            # Moving the message to the mailbox's archive folder (IMAP MOVE) comes with the IMAP integration.
            return {
                "email_id": email.pk,
                "archived_at": iso(archived_at),
                "already_archived": email.archived_at is not None,
            }

        archived = change_once(action, "email.archived", archive)
        return Outcome(result=archived, undo_data=archived)

    def undo(self, action: Action, params: ArchiveEmailParams) -> dict[str, Any]:
        if action.undo_data.get("already_archived"):
            return {"email_id": action.undo_data.get("email_id"), "unarchived": False, "why": "it was archived before"}
        email_id = recorded(action, "email_id")
        back = Email.objects.filter(pk=email_id, archived_at=moment(recorded(action, "archived_at")))
        if not back.update(archived_at=None):
            raise UndoRefused(
                "The email was taken out of the archive or archived again since; there is nothing to undo."
            )
        return {"email_id": email_id, "unarchived": True}


# --- escalate_issue -------------------------------------------------------------

PRIORITY_NAMED = {"high": Priority.HIGH, "urgent": Priority.URGENT}


class EscalateIssueParams(Params):
    reason: str = Field(min_length=1, max_length=2000)
    priority: Literal["high", "urgent"] = "urgent"


@register
class EscalateIssue(Handler):
    """Raise the email's priority and escalation level, and tell the escalation chain by email."""

    type = ActionType.ESCALATE_ISSUE
    params = EscalateIssueParams
    capability = "mail"
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
            # Slack comes with the chat integration: the same chain, told there as well.
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
        ids = action.undo_data.get("notified_ids") or []
        by_id = TeamMember.objects.select_related("user").in_bulk(ids)
        told = [by_id[pk] for pk in ids if pk in by_id]
        notice = None
        if told:
            try:
                message = build_escalation_notice(
                    action,
                    told,
                    level=level,
                    reason="The escalation was undone.",
                    escalated_from=action.assignee,
                    undo=True,
                )
            except ValueError as exc:
                raise UndoRefused(str(exc)) from None
            store_notice(action, "escalation-undo", message)
            notice = deliver_notice(action, "escalation-undo")
        return {"email_id": email_id, "escalation_level": previous_level, "notice": notice}
