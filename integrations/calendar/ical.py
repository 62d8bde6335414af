"""iCalendar (RFC 5545) invitations and cancellations, as sent by email (iTIP, RFC 5546), and events and
reminders as a calendar server keeps them (CalDAV, RFC 4791).

An invitation, its cancellation and the event in a calendar share the
event's UID; the cancellation carries a higher SEQUENCE, which is how
calendar clients know it replaces the invitation they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Component, Event, Todo, vCalAddress

PRODUCT_ID = "-//Mailroom//Mailroom//EN"
REQUEST_CONTENT_TYPE = "text/calendar; method=REQUEST; charset=UTF-8"
CANCEL_CONTENT_TYPE = "text/calendar; method=CANCEL; charset=UTF-8"
FILENAME = "invite.ics"


@dataclass(frozen=True)
class Meeting:
    """One event as the invitation describes it. `start` and `end` are aware, in the meeting's own timezone."""

    uid: str
    title: str
    start: datetime
    end: datetime
    organizer: str
    attendees: tuple[str, ...]
    location: str = ""
    description: str = ""
    sequence: int = 0
    stamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("A meeting's start and end must be aware datetimes.")
        if self.end <= self.start:
            raise ValueError("A meeting must end after it starts.")


@dataclass(frozen=True)
class Reminder:
    """A reminder as a calendar keeps it (a VTODO, an Apple reminder). `due` is aware."""

    uid: str
    title: str
    due: datetime
    description: str = ""
    sequence: int = 0
    stamp: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.due.tzinfo is None:
            raise ValueError("A reminder's due time must be an aware datetime.")


def invitation(meeting: Meeting) -> bytes:
    """The iCalendar METHOD:REQUEST that invites the attendees."""
    return _serialize(_event(meeting, status="CONFIRMED"), method="REQUEST")


def cancellation(meeting: Meeting) -> bytes:
    """The iCalendar METHOD:CANCEL that withdraws the invitation; give it a higher sequence than the invitation."""
    return _serialize(_event(meeting, status="CANCELLED"), method="CANCEL")


def stored_event(meeting: Meeting) -> bytes:
    """The event as a calendar server keeps it: the invitation's VEVENT, without METHOD (RFC 4791 4.1).

    SCHEDULE-AGENT=CLIENT tells a server that schedules (iCloud, RFC 6638)
    that the invitations are ours to send: they went by email, and the
    attendees must not get a second one from the server.
    """
    return _serialize(_event(meeting, status="CONFIRMED", schedule_agent="CLIENT"))


def stored_todo(reminder: Reminder) -> bytes:
    """The reminder as a VTODO with DUE and an alarm at that time, as Apple Reminders reads it through CalDAV."""
    todo = Todo()
    todo.add("uid", reminder.uid)
    todo.add("dtstamp", reminder.stamp.astimezone(UTC))
    todo.add("summary", reminder.title)
    if reminder.description:
        todo.add("description", reminder.description)
    todo.add("due", _calendar_time(reminder.due))
    todo.add("status", "NEEDS-ACTION")
    todo.add("sequence", reminder.sequence)
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", reminder.title)
    # An absolute trigger must say so; without VALUE a reader expects a duration.
    alarm.add("trigger", reminder.due.astimezone(UTC), parameters={"VALUE": "DATE-TIME"})
    todo.add_component(alarm)
    return _serialize(todo)


def _event(meeting: Meeting, *, status: str, schedule_agent: str = "") -> Event:
    event = Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", meeting.stamp.astimezone(UTC))
    # Local times with a TZID, so a meeting at 10:00 Berlin stays at 10:00 across a DST change.
    event.add("dtstart", _calendar_time(meeting.start))
    event.add("dtend", _calendar_time(meeting.end))
    event.add("summary", meeting.title)
    if meeting.location:
        event.add("location", meeting.location)
    if meeting.description:
        event.add("description", meeting.description)
    organizer = _organizer(meeting.organizer)
    attendees = []
    for address in meeting.attendees:
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params["CUTYPE"] = "INDIVIDUAL"
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        attendee.params["PARTSTAT"] = "NEEDS-ACTION"
        attendee.params["RSVP"] = "TRUE"
        attendees.append(attendee)
    if schedule_agent:
        for address in [organizer, *attendees]:
            address.params["SCHEDULE-AGENT"] = schedule_agent
    event.add("organizer", organizer)
    for attendee in attendees:
        event.add("attendee", attendee)
    event.add("sequence", meeting.sequence)
    event.add("status", status)
    return event


def _serialize(component: Component, *, method: str = "") -> bytes:
    """`component` in a VCALENDAR, with a VTIMEZONE for each TZID it uses."""
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    calendar.add_component(component)
    times = [component.decoded(name) for name in ("DTSTART", "DTEND", "DUE") if name in component]
    # The zones' rules only need to cover the times used.
    calendar.add_missing_timezones(
        first_date=(min(times) - timedelta(days=366)).date(), last_date=(max(times) + timedelta(days=366)).date()
    )
    return calendar.to_ical()


def _calendar_time(value: datetime) -> datetime:
    """A time as iCalendar can name its zone: in its IANA zone if it has one, else in UTC.

    A bare offset (+01:00) is no timezone a calendar knows: it would become an
    unknown TZID, so the time is written in UTC instead.
    """
    return value if isinstance(value.tzinfo, ZoneInfo) else value.astimezone(UTC)


def _organizer(sender: str) -> vCalAddress:
    """DEFAULT_FROM_EMAIL, which may be "Name <address>", as an ORGANIZER property."""
    name, address = parseaddr(sender)
    organizer = vCalAddress(f"mailto:{address or sender}")
    if name:
        organizer.params["CN"] = name
    return organizer
