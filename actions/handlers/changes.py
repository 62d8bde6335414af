"""What the handlers that change Mailroom's own records share: making a change once per action, and its notice.

Delivery is at least once, and a notice that fails to send retries the whole
action. So a handler's change is made in one transaction together with an
audit entry that holds what undo needs (and with the notice, stored in the
outbox). A second run of the action finds the entry, makes no change, and
reports the first one; the notice is stored once under a Message-ID derived
from the action, and the outbox never delivers it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db import transaction

from actions.audit import record_audit
from actions.handlers.base import UndoRefused
from actions.models import Action, AuditEntry
from integrations import outbox
from integrations.errors import IntegrationError
from integrations.models import OutboxMessage


def iso(value: datetime | None) -> str | None:
    """A moment as undo data and the audit trail keep it (JSON has no dates)."""
    return value.isoformat() if value else None


def moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def recorded(action: Action, key: str) -> Any:
    """A value the action's execution kept for undo; UndoRefused when it is missing."""
    value = action.undo_data.get(key)
    if value is None:
        raise UndoRefused(f"Action {action.pk} kept no {key} to undo with.")
    return value


def change_once(action: Action, event: str, change: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `change` once for this action and return its details, recorded as the audit entry `event`.

    `change` runs in a transaction with the entry; if the entry is already
    there, `change` does not run and the recorded details are returned.
    """
    with transaction.atomic():
        done = AuditEntry.objects.for_object(action).filter(event=event).order_by("-id").first()
        if done is None:
            done = record_audit(event, target=action, actor="worker", details=change())
    return done.details


def post_once(action: Action, event: str, post: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Make an outside post (a chat message) once for this action; what was posted, or why not.

    The post runs outside any transaction (a network call must not hold the
    database's write lock) and is recorded as the audit entry `event` after
    it; a worker dying between the two makes the retry post again, the only
    way it can repeat. A transient failure raises, so the action retries; a
    permanent one (bad token, no such channel) is recorded as not posted
    instead of failing a change already made.
    """
    done = AuditEntry.objects.for_object(action).filter(event=event).order_by("-id").first()
    if done is not None:
        return done.details
    try:
        posted = post()
    except IntegrationError as exc:
        if not exc.permanent:
            raise
        posted = {"posted": False, "error": str(exc)}
    return change_once(action, event, lambda: posted)


def store_notice(action: Action, purpose: str, message: EmailMultiAlternatives) -> OutboxMessage:
    """Put a notice in the outbox under the action's Message-ID for `purpose` (or find it there)."""
    return outbox.store_email(message, message_id=outbox.message_id_for(action.pk, purpose), action=action)


def deliver_notice(action: Action, purpose: str) -> dict[str, Any] | None:
    """Send the action's stored notice for `purpose` unless it has gone already; None when none was stored.

    A mail failure raises IntegrationError, so the action retries.
    """
    message = OutboxMessage.objects.filter(message_id=outbox.message_id_for(action.pk, purpose)).first()
    if message is None:
        return None
    outbox.deliver(message)
    message.refresh_from_db(fields=["status"])
    return {"message_id": message.message_id, "to": message.to, "cc": message.cc, "status": message.status}
