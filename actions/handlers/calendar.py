"""Handlers about time: schedule a meeting (an iCalendar invitation by email) and set a reminder.

Also `send_due_reminders`, the sweeper's step that mails the reminders whose
time has come.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from pydantic import AwareDatetime, Field, ValidationInfo, field_validator, model_validator

from actions import guards
from actions.handlers import ActionFailed, Handler, Outcome, Params, UndoRefused, register
from actions.handlers.base import Address
from actions.handlers.outgoing import SUBJECT_CHARS, Addresses, Hours, RequiredText, mailbox_address, send
from actions.models import Action
from integrations import calendar, outbox
from integrations.errors import IntegrationError
from integrations.models import LocalReminder, OutboxMessage, OutboxStatus, ReminderStatus
from teams.notices import one_line

logger = logging.getLogger(__name__)

# A reminder claimed but not delivered (server down, worker died) is delivered by a later sweep within this time.
REDELIVER_WITHIN = timedelta(days=3)


@cache
def _timezone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class MeetingParams(Params):
    title: Annotated[RequiredText, Field(max_length=300)]
    # Before `start`, which is read in it.
    timezone: str = "UTC"
    start: datetime
    duration_minutes: int = Field(default=30, ge=5, le=1440)
    attendees: Annotated[Addresses, Field(min_length=1)]
    location: str = ""
    description: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in _timezone_names():
            raise ValueError(f"{value!r} is not an IANA timezone name, such as 'Europe/Berlin'")
        return value

    @field_validator("start")
    @classmethod
    def _in_timezone(cls, value: datetime, info: ValidationInfo) -> datetime:
        if "timezone" not in info.data:
            return value  # the timezone's own error says what is wrong
        zone = zoneinfo.ZoneInfo(info.data["timezone"])
        if value.tzinfo is not None:
            return value.astimezone(zone)
        local = value.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
            raise ValueError(f"{value:%Y-%m-%d %H:%M} does not exist in {zone.key}: the clocks change then")
        return local

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.duration_minutes)


@register
class ScheduleMeeting(Handler):
    """Invite the attendees to a meeting: an iCalendar REQUEST by email. Undo sends the CANCEL."""

    type = "schedule_meeting"
    params = MeetingParams
    capability = "calendar"
    also_uses = ("mail",)
    sends_mail = True
    undoable = True

    def recipients(self, action: Action, params: MeetingParams) -> list[str]:
        return list(params.attendees)

    def execute(self, action: Action, params: MeetingParams) -> Outcome:
        if params.end <= timezone.now():
            raise ActionFailed(f"The meeting ended at {params.end.isoformat()}; there is nothing to invite to.")
        meeting = calendar.Meeting(
            # From the action, so a redelivery (or the CANCEL, or the calendar's copy) names the same event.
            uid=outbox.message_id_for(action.pk, "event").strip("<>"),
            title=params.title,
            start=params.start,
            end=params.end,
            organizer=settings.DEFAULT_FROM_EMAIL,
            attendees=tuple(params.attendees),
            location=params.location,
            description=params.description,
        )
        # Into the calendar first: a calendar that refuses for good stops the action before anyone is invited.
        # A retry saves it again unchanged, and the invitation below is sent once whatever happens.
        kept = _keep(calendar.calendar_backend(), lambda backend: backend.save_event(meeting))
        message = _mail_attendees(
            action,
            "invite",
            meeting,
            "Invitation",
            "You are invited to",
            calendar.REQUEST_CONTENT_TYPE,
            calendar.invitation,
        )
        return Outcome(
            result={
                "message_id": message.message_id,
                "to": message.to,
                "subject": message.subject,
                "uid": meeting.uid,
                **kept,
            },
            undo_data={
                "uid": meeting.uid,
                "sequence": meeting.sequence,
                "attendees": list(meeting.attendees),
                "start": meeting.start.isoformat(),
                "end": meeting.end.isoformat(),
                "timezone": params.timezone,
                **kept,
            },
        )

    def undo(self, action: Action, params: MeetingParams) -> dict[str, Any]:
        sent = action.undo_data
        if not sent.get("uid"):
            raise UndoRefused("No invitation was recorded for this action, so there is nothing to cancel.")
        zone = zoneinfo.ZoneInfo(sent["timezone"])
        meeting = calendar.Meeting(
            uid=sent["uid"],
            title=params.title,
            start=datetime.fromisoformat(sent["start"]).astimezone(zone),
            end=datetime.fromisoformat(sent["end"]).astimezone(zone),
            organizer=settings.DEFAULT_FROM_EMAIL,
            attendees=tuple(sent["attendees"]),
            location=params.location,
            sequence=sent["sequence"] + 1,
        )
        # The calendar's copy first: undo runs in a transaction, so if the calendar fails, no CANCEL has gone out
        # and the undo can be asked for again.
        removed = _remove(sent, calendar.calendar_backend, lambda backend: backend.delete_event(meeting.uid))
        message = _mail_attendees(
            action,
            "cancel",
            meeting,
            "Cancelled",
            "This meeting is cancelled",
            calendar.CANCEL_CONTENT_TYPE,
            calendar.cancellation,
        )
        return {
            "uid": meeting.uid,
            "sequence": meeting.sequence,
            "message_id": message.message_id,
            "attendees": list(meeting.attendees),
            **removed,
        }


def _mail_attendees(
    action: Action,
    purpose: str,
    meeting: calendar.Meeting,
    what: str,
    heading: str,
    content_type: str,
    build: Callable[[calendar.Meeting], bytes],
) -> OutboxMessage:
    """Mail the attendees the meeting's iCalendar message (`build`: the invitation or the cancellation)."""
    return send(
        action,
        purpose,
        to=list(meeting.attendees),
        subject=_subject(what, meeting),
        text_body=_meeting_text(heading, meeting),
        attachments=[outbox.attachment(calendar.FILENAME, content_type, build(meeting))],
    )


def _keep(backend: calendar.CalendarBackend | calendar.ReminderBackend, save: Callable[[Any], str]) -> dict[str, str]:
    """Save into the configured calendar or reminders backend, unless it keeps nothing outside; where it went."""
    if backend.name in {"email", "local"}:
        return {}
    return {"kept_in": backend.name, "kept_at": save(backend)}


def _remove(kept: dict[str, Any], configured: Callable[[], Any], delete: Callable[[Any], bool]) -> dict[str, Any]:
    """Delete what `_keep` saved, from the backend that recorded it; what became of it."""
    if not kept.get("kept_in"):
        return {}
    backend = configured()
    if backend.name != kept["kept_in"]:
        # Configured otherwise since: the copy cannot be reached from here, so say where it was left.
        return {"removed_from": "", "left_in": kept["kept_in"], "left_at": kept.get("kept_at", "")}
    return {"removed_from": backend.name, "was_there": delete(backend)}


def _subject(what: str, meeting: calendar.Meeting) -> str:
    when = f"{meeting.start:%a %d %b %Y %H:%M} ({meeting.start.tzinfo})"
    return f"{what}: {one_line(meeting.title)} @ {when}"[:SUBJECT_CHARS]


def _meeting_text(heading: str, meeting: calendar.Meeting) -> str:
    lines = [
        f"{heading}: {one_line(meeting.title)}",
        f"When: {meeting.start:%A %d %B %Y, %H:%M} to {meeting.end:%H:%M} ({meeting.start.tzinfo})",
    ]
    if meeting.location:
        lines.append(f"Where: {one_line(meeting.location)}")
    if meeting.description:
        lines += ["", meeting.description.strip()]
    return "\n".join(lines) + "\n"


class ReminderParams(Params):
    text: Annotated[RequiredText, Field(max_length=500)]
    remind_at: AwareDatetime | None = None
    in_hours: Hours | None = None
    recipient: Address | None = None

    @model_validator(mode="after")
    def _one_time(self) -> ReminderParams:
        if (self.remind_at is None) == (self.in_hours is None):
            raise ValueError("give exactly one of remind_at (a date and time with its timezone) or in_hours")
        return self


@register
class SetReminder(Handler):
    """Keep a reminder for a person; `send_due_reminders` mails it when its time comes."""

    type = "set_reminder"
    params = ReminderParams
    # Its circuit guards the reminders backend; with "local" that never fails, so the circuit never opens.
    capability = "reminders"
    undoable = True

    def execute(self, action: Action, params: ReminderParams) -> Outcome:
        recipient = params.recipient or _default_recipient(action)
        # Sending happens later, past the guard rails that check sends: check here.
        refusal = guards.check_recipients(action, [recipient])
        if refusal is not None:
            raise ActionFailed(f"Refused: {refusal.reason}")
        reminder = LocalReminder.objects.filter(action=action).first() or LocalReminder(
            action=action,
            recipient=recipient,
            text=params.text,
            # Hours count from when the reminder is set: the action may have waited for approval.
            remind_at=params.remind_at or timezone.now() + timedelta(hours=params.in_hours or 0),
            email=action.email,
        )
        # The reminders app's copy first: one refused for good stops the action before a reminder is kept,
        # and a redelivery finds the local reminder and saves the same copy again, unchanged.
        uid = outbox.message_id_for(action.pk, "reminder").strip("<>")
        kept = _keep(
            calendar.reminder_backend(),
            lambda backend: backend.save_reminder(
                calendar.Reminder(
                    uid=uid, title=reminder.text, due=reminder.remind_at, description="\n\n".join(_about(reminder))
                )
            ),
        )
        if reminder.pk is None:
            reminder, _ = LocalReminder.objects.get_or_create(
                action=action,
                defaults={
                    "recipient": reminder.recipient,
                    "text": reminder.text,
                    "remind_at": reminder.remind_at,
                    "email": reminder.email,
                },
            )
        kept = {**kept, "uid": uid} if kept else {}
        return Outcome(
            result={
                "reminder_id": reminder.pk,
                "recipient": reminder.recipient,
                "remind_at": reminder.remind_at.isoformat(),
                "text": reminder.text,
                **kept,
            },
            undo_data={"reminder_id": reminder.pk, **kept},
        )

    def undo(self, action: Action, params: ReminderParams) -> dict[str, Any]:
        details = _cancel_local_reminder(action)
        # After the local one, so a refusal (already sent) leaves the app's copy too; a failure here rolls back.
        uid = action.undo_data.get("uid", "")
        return {**details, **_remove(action.undo_data, calendar.reminder_backend, lambda b: b.delete_reminder(uid))}


def _cancel_local_reminder(action: Action) -> dict[str, Any]:
    reminder = LocalReminder.objects.filter(action=action).first()
    if reminder is None:
        return {"reminder_id": None, "status": "gone"}
    if LocalReminder.objects.filter(pk=reminder.pk, status=ReminderStatus.PENDING).update(
        status=ReminderStatus.CANCELLED
    ):
        return {"reminder_id": reminder.pk, "status": ReminderStatus.CANCELLED}
    reminder.refresh_from_db(fields=["status"])
    if reminder.status == ReminderStatus.SENT:
        raise UndoRefused("the reminder was already sent")
    return {"reminder_id": reminder.pk, "status": reminder.status}


def _default_recipient(action: Action) -> str:
    if action.assignee is not None and action.assignee.email:
        return action.assignee.email
    if action.email is not None and (address := mailbox_address(action.email)):
        return address
    raise ActionFailed("A reminder needs a recipient: give one, assign the action, or set it on an email's mailbox.")


def send_due_reminders(now: datetime | None = None) -> int:
    """Mail every pending reminder whose time has come; return how many reminder emails this call delivered.

    Each reminder is claimed (pending to sent) in one transaction with storing
    its message, so an undo either wins or finds it sent. Delivery follows,
    and covers messages of reminders claimed earlier that did not leave
    (mail server down, worker died), within REDELIVER_WITHIN.
    """
    now = now or timezone.now()
    due = LocalReminder.objects.filter(status=ReminderStatus.PENDING, remind_at__lte=now)
    for reminder_id in list(due.order_by("remind_at", "pk").values_list("pk", flat=True)):
        with transaction.atomic():
            claimed = LocalReminder.objects.filter(pk=reminder_id, status=ReminderStatus.PENDING).update(
                status=ReminderStatus.SENT, sent_at=now
            )
            if claimed == 1:  # else cancelled, or another sweeper has it
                _store_reminder(LocalReminder.objects.select_related("email", "action").get(pk=reminder_id))
    return _deliver_claimed(now)


def _deliver_claimed(now: datetime) -> int:
    claimed = LocalReminder.objects.filter(status=ReminderStatus.SENT, sent_at__gte=now - REDELIVER_WITHIN)
    message_ids = [_message_id(reminder) for reminder in claimed.only("pk", "action_id")]
    waiting = OutboxMessage.objects.filter(message_id__in=message_ids, status=OutboxStatus.PENDING)
    delivered = 0
    for message in waiting.order_by("created_at", "pk"):
        try:
            if outbox.deliver(message):
                delivered += 1
        except IntegrationError as exc:
            logger.warning("Reminder message %s was not delivered: %s", message.message_id, exc)
            if not exc.permanent:
                break  # The server is unwell: the next sweep tries again.
    return delivered


def _message_id(reminder: LocalReminder) -> str:
    return outbox.message_id_for(reminder.action_id or 0, f"reminder-{reminder.pk}")


def _store_reminder(reminder: LocalReminder) -> OutboxMessage:
    return outbox.store_message(
        message_id=_message_id(reminder),
        action=reminder.action,
        to=[reminder.recipient],
        subject=f"Reminder: {one_line(reminder.text)}"[:SUBJECT_CHARS],
        text_body="\n\n".join([reminder.text.strip(), *_about(reminder)]) + "\n",
    )


def _about(reminder: LocalReminder) -> list[str]:
    """What the reminder is about: its email and its action's page, for the reminder mail and the app's copy."""
    lines = []
    if reminder.email is not None:
        email = reminder.email
        lines.append(
            f'About the email "{one_line(email.subject) or "(no subject)"}" from {one_line(email.sender)}, '
            f"received {email.received_at:%Y-%m-%d %H:%M %Z}."
        )
    if reminder.action_id:
        lines.append(settings.SITE_URL + reverse("admin:actions_action_change", args=[reminder.action_id]))
    return lines
