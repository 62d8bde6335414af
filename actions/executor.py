"""Running actions: queueing on commit, claiming by compare-and-set, retries with backoff, dead letters, undo.

The database row is the truth; the queue carries only action ids. A task
that arrives for an action no longer queued, not yet due, or already claimed
by another worker does nothing, so redelivery is harmless. Outcomes are
recorded here, never by handlers.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task
from pydantic import ValidationError

from actions import guards
from actions.audit import record_audit
from actions.handlers import ActionFailed, UndoRefused, field_errors, get_handler
from actions.models import Action, ActionStatus, ExecutionSwitch, Priority, ProcessingRun, RunStatus
from actions.transitions import IllegalTransition, TransitionError, transition_action
from integrations import calls, circuit
from integrations.errors import IntegrationError
from observability.context import with_action_id

logger = logging.getLogger(__name__)
S = ActionStatus
RUN_TASK = "actions.executor.run_action"
UNDO_SALT = "mailroom.undo"


# --- Queueing --------------------------------------------------------------------


def lane_for(action: Action) -> str | None:
    """The django-q2 cluster an action runs on: urgent ones have a lane of their own."""
    return settings.URGENT_LANE if action.priority >= Priority.URGENT else None


def enqueue_on_commit(action: Action) -> None:
    """Put the action's id on its lane's queue once the current transaction commits."""
    action_id, lane = action.pk, lane_for(action)

    def send() -> None:
        Action.objects.filter(pk=action_id).update(enqueued_at=timezone.now())
        async_task(RUN_TASK, action_id, cluster=lane, task_name=f"action-{action_id}")

    transaction.on_commit(send)


def queue_action(action: Action, *, acting_user=None, actor: str = "", reason: str = "") -> Action:
    """Move an approved (or auto-approved) action to `queued` and enqueue it when it is due.

    Sends wait out SEND_DELAY_SECONDS first, so they can still be cancelled.
    """
    handler = get_handler(action.type)
    now = timezone.now()
    due = action.scheduled_for or handler.due_at(action, handler.parse(action)) or now
    if handler.sends_mail and settings.SEND_DELAY_SECONDS:
        due = max(due, now + timedelta(seconds=settings.SEND_DELAY_SECONDS))
    with transaction.atomic():
        transition_action(
            action,
            S.QUEUED,
            acting_user=acting_user,
            actor=actor,
            reason=reason,
            next_attempt_at=due if due > now else None,
        )
        if due <= now:
            enqueue_on_commit(action)
    return action


# --- Running ---------------------------------------------------------------------


def retry_limit(action_type: str) -> int:
    return settings.RETRY_LIMITS.get(action_type, settings.RETRY_LIMIT)


def backoff(attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with jitter: base * 2^(attempts-1), capped, scaled by 0.5-1.0; never under retry_after."""
    ceiling = min(settings.RETRY_MAX_SECONDS, settings.RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    delay = ceiling * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not security
    return timedelta(seconds=max(delay, retry_after or 0))


@with_action_id
def run_action(action_id: int) -> str:
    """The worker's task: claim one queued action, execute it, record the outcome. Returns what happened."""
    if ExecutionSwitch.is_paused():
        return "paused"  # It stays queued; resuming enqueues it again.
    action = Action.objects.filter(pk=action_id).first()
    if action is None or action.status != S.QUEUED:
        return "not queued"
    if action.run_id and ProcessingRun.objects.filter(pk=action.run_id, status=RunStatus.PAUSED).exists():
        return "run paused"  # It stays queued; resuming the run enqueues it again.
    now = timezone.now()
    if action.next_attempt_at and action.next_attempt_at > now:
        return "not due"
    handler = get_handler(action.type)

    # Every circuit is asked (each may be due its health check), and the action waits for the last to reopen.
    blocked = {name: until for name in handler.uses(action) if (until := circuit.blocked_until(name))}
    if blocked:
        # A system it needs is down: wait for it without spending an attempt.
        Action.objects.filter(pk=action.pk, status=S.QUEUED).update(next_attempt_at=max(blocked.values()))
        return f"circuit {', '.join(blocked)} open"

    try:
        transition_action(
            action,
            S.RUNNING,
            actor="worker",
            attempts=action.attempts + 1,
            started_at=now,
            lease_expires_at=now + timedelta(seconds=settings.ACTION_LEASE_SECONDS),
        )
    except TransitionError:
        return "claimed elsewhere"

    try:
        # Parameters were checked at proposal; a row written past that (or
        # before a schema changed) is refused here for good, naming the field.
        params = handler.parse(action)
    except ValidationError as exc:
        fields = "; ".join(f"{name}: {why}" for name, why in field_errors(exc))
        return _failed(action, f"Invalid parameters: {fields}", permanent=True)
    refusal = guards.check(action, handler, params)
    if refusal is not None:
        return _refused(action, refusal)

    answered: set[str] = set()  # the integrations that answered the handler's calls
    try:
        with calls.noting_answers(answered):
            outcome = handler.execute(action, params)
    except IntegrationError as exc:
        # Charged to the integration that failed: Slack failing an escalation is no sign the mail server is down.
        failed = exc.capability or handler.capability
        _record_successes(answered - {failed})
        if exc.permanent:
            circuit.record_refusal(failed)
        else:
            circuit.record_failure(failed, str(exc))
        return _failed(action, str(exc), permanent=exc.permanent, retry_after=exc.retry_after)
    except ActionFailed as exc:
        _record_successes(answered)
        return _failed(action, str(exc), permanent=exc.permanent)
    except Exception as exc:
        _record_successes(answered)
        # A bug or an unexpected failure: retried like a transient error, so a
        # fix can let it through, and dead once the retries are spent.
        logger.exception("Action %s (%s) raised", action.pk, action.type)
        return _failed(action, f"{type(exc).__name__}: {exc}", permanent=False)

    # A handler that chose an assignee says so; the row is ours to write.
    extra = {"assignee_id": outcome.result["assignee_id"]} if "assignee_id" in outcome.result else {}
    # One commit for the outcome and its counts: each commit waits for the disk (PostgreSQL) or the write lock (SQLite).
    with transaction.atomic():
        # Its own integration worked, and so did every other one that answered; one it did not call is left alone.
        _record_successes({handler.capability, *answered})
        transition_action(
            action,
            S.SUCCEEDED,
            **extra,
            actor="worker",
            details={"result": outcome.result},
            result=outcome.result,
            undo_data=outcome.undo_data,
            last_error="",
            lease_expires_at=None,
        )
    return "succeeded"


def _record_successes(names: set[str]) -> None:
    """A success for each of these integrations: counted, and closing its circuit if it was half open."""
    for name in sorted(names):
        circuit.record_success(name)


def _failed(action: Action, error: str, *, permanent: bool, retry_after: float | None = None) -> str:
    error = error[:2000]
    if permanent or action.attempts >= retry_limit(action.type):
        why = "permanent error" if permanent else f"gave up after {action.attempts} attempts"
        transition_action(action, S.DEAD, actor="worker", reason=why, last_error=error, lease_expires_at=None)
        return "dead"
    next_attempt = timezone.now() + backoff(action.attempts, retry_after)
    transition_action(
        action,
        S.FAILED,
        actor="worker",
        reason="will retry",
        details={"error": error, "next_attempt_at": next_attempt.isoformat()},
        last_error=error,
        next_attempt_at=next_attempt,
        lease_expires_at=None,
    )
    return "failed"


def _refused(action: Action, refusal) -> str:
    if refusal.retry_at is None:
        transition_action(
            action,
            S.DEAD,
            actor="guard",
            reason=refusal.reason,
            last_error=f"Refused: {refusal.reason}",
            lease_expires_at=None,
        )
        return "refused"
    # A rate limit: wait for room, and give the attempt back.
    transition_action(
        action,
        S.QUEUED,
        actor="guard",
        reason=refusal.reason,
        attempts=action.attempts - 1,
        next_attempt_at=refusal.retry_at,
        lease_expires_at=None,
        last_error=f"Waiting: {refusal.reason}",
    )
    return "rate limited"


# --- People acting on actions -------------------------------------------------------


RETRYABLE = frozenset({S.FAILED, S.DEAD})


def retry_action(action: Action, *, acting_user=None, actor: str = "") -> Action:
    """Send a dead (or failed) action back to the queue with a fresh set of attempts.

    Only those: retrying a proposed or approved action would queue it past
    its approval.
    """
    if action.status not in RETRYABLE:
        raise IllegalTransition(
            f"Action {action.pk} is {action.status}; only failed or dead actions can be retried.",
            action_id=action.pk,
            current=action.status,
            wanted=S.QUEUED,
        )
    with transaction.atomic():
        transition_action(
            action, S.QUEUED, acting_user=acting_user, actor=actor, reason="retried", attempts=0, next_attempt_at=None
        )
        enqueue_on_commit(action)
    return action


def cancel_action(action: Action, *, acting_user=None, actor: str = "", reason: str = "") -> Action:
    """Cancel an action that has not run; for a send inside its delay window, this stops the send."""
    return transition_action(action, S.CANCELLED, acting_user=acting_user, actor=actor, reason=reason or "cancelled")


def undo_token(action: Action) -> str:
    """A signed token that undoes this one executed action, once, within UNDO_TOKEN_MAX_AGE."""
    return signing.TimestampSigner(salt=UNDO_SALT).sign(f"{action.pk}:{action.idempotency_key}")


def action_for_undo_token(token: str) -> Action:
    """The action a token may undo; raises UndoRefused when the token is bad, expired or spent."""
    signer = signing.TimestampSigner(salt=UNDO_SALT)
    try:
        value = signer.unsign(token, max_age=settings.UNDO_TOKEN_MAX_AGE)
    except signing.SignatureExpired:
        raise UndoRefused("This undo link has expired.") from None
    except signing.BadSignature:
        raise UndoRefused("This undo link is not valid.") from None
    action_id, _, key = value.partition(":")
    action = Action.objects.filter(pk=action_id, idempotency_key=key).first()
    if action is None:
        raise UndoRefused("The action of this undo link no longer exists.")
    return action


def undo_action(action: Action, *, acting_user=None, actor: str = "") -> dict[str, Any]:
    """Reverse an executed action and mark it undone; raise UndoRefused with the reason when it cannot be."""
    if action.status == S.UNDONE:
        raise UndoRefused(f"Action {action.pk} was already undone.")
    if action.status != S.SUCCEEDED:
        raise UndoRefused(
            f"Action {action.pk} is {action.get_status_display().lower()}; only a succeeded action can be undone."
        )
    handler = get_handler(action.type)
    if not handler.undoable:
        if handler.sends_mail:
            raise UndoRefused(f"{action.get_type_display()}: the mail was already sent and cannot be recalled.")
        raise UndoRefused(f"{action.get_type_display()} cannot be undone.")
    try:
        with transaction.atomic():
            # Claim first, so two undos of one action never both reverse it.
            transition_action(action, S.UNDONE, acting_user=acting_user, actor=actor, reason="undo requested")
            details = handler.undo(action, handler.parse(action))
            if "assignee_id" in details:
                # The handler gave the work back to someone; the row is ours to write.
                Action.objects.filter(pk=action.pk).update(assignee_id=details["assignee_id"])
                action.assignee_id = details["assignee_id"]
    except UndoRefused as exc:
        record_audit(
            "action.undo_refused", target=action, acting_user=acting_user, actor=actor, details={"reason": str(exc)}
        )
        raise
    except IntegrationError as exc:
        record_audit(
            "action.undo_failed", target=action, acting_user=acting_user, actor=actor, details={"error": str(exc)}
        )
        raise UndoRefused(f"Undo failed: {exc}") from exc
    record_audit("action.undo_done", target=action, acting_user=acting_user, actor=actor, details=details)
    return details


# --- The kill switch -----------------------------------------------------------------


def pause_execution(*, acting_user=None, actor: str = "", reason: str = "") -> ExecutionSwitch:
    """Stop all execution at once. Queued actions stay queued; intake and analysis go on."""
    with transaction.atomic():
        switch = ExecutionSwitch.current()
        ExecutionSwitch.objects.filter(pk=switch.pk).update(
            paused=True, changed_at=timezone.now(), changed_by=_user(acting_user), reason=reason
        )
        record_audit("execution.paused", acting_user=acting_user, actor=actor, details={"reason": reason})
    return ExecutionSwitch.current()


def resume_execution(*, acting_user=None, actor: str = "", reason: str = "") -> int:
    """Let execution go on; enqueue every due queued action, most urgent first. Returns how many."""
    with transaction.atomic():
        switch = ExecutionSwitch.current()
        ExecutionSwitch.objects.filter(pk=switch.pk).update(
            paused=False, changed_at=timezone.now(), changed_by=_user(acting_user), reason=reason
        )
        record_audit("execution.resumed", acting_user=acting_user, actor=actor, details={"reason": reason})
        return enqueue_due(timezone.now())


def enqueue_due(now: datetime, *, only_unsent_before: datetime | None = None, run_id: int | None = None) -> int:
    """Enqueue queued actions that are due (of one run, if given), most urgent first; return how many."""
    due = Action.objects.filter(status=S.QUEUED).exclude(next_attempt_at__gt=now).exclude(run__status=RunStatus.PAUSED)
    if run_id is not None:
        due = due.filter(run_id=run_id)
    if only_unsent_before is not None:
        # Not enqueued yet, enqueued before it was due, or long enough ago to be lost.
        due = due.filter(
            Q(enqueued_at__isnull=True)
            | Q(enqueued_at__lt=only_unsent_before)
            | Q(enqueued_at__lt=F("next_attempt_at"))
        )
    count = 0
    # In a transaction, so the enqueues run after the cursor is done: django-q2's
    # ORM broker may close the connection a streaming cursor is reading.
    with transaction.atomic():
        for action in due.order_by("-priority", "created_at").only("pk", "priority").iterator(chunk_size=500):
            enqueue_on_commit(action)
            count += 1
    return count


def _user(user):
    return user if user is not None and user.is_authenticated else None
