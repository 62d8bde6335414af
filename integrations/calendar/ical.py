"""iCalendar (RFC 5545) invitations and cancellations, as sent by email (iTIP, RFC 5546).

An invitation and its cancellation share the event's UID; the cancellation
carries a higher SEQUENCE, which is how calendar clients know it replaces
the invitation they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from icalendar import Calendar, Event, vCalAddress

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


def invitation(meeting: Meeting) -> bytes:
    """The iCalendar METHOD:REQUEST that invites the attendees."""
    return _calendar(meeting, method="REQUEST", status="CONFIRMED")


def cancellation(meeting: Meeting) -> bytes:
    """The iCalendar METHOD:CANCEL that withdraws the invitation; give it a higher sequence than the invitation."""
    return _calendar(meeting, method="CANCEL", status="CANCELLED")


def _calendar(meeting: Meeting, *, method: str, status: str) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODUCT_ID)
    calendar.add("version", "2.0")
    calendar.add("method", method)

    event = Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", meeting.stamp.astimezone(UTC))
    # Local times with a TZID, so a meeting at 10:00 Berlin stays at 10:00 across a DST change.
    event.add("dtstart", meeting.start)
    event.add("dtend", meeting.end)
    event.add("summary", meeting.title)
    if meeting.location:
        event.add("location", meeting.location)
    if meeting.description:
        event.add("description", meeting.description)
    event.add("organizer", _organizer(meeting.organizer))
    for address in meeting.attendees:
        attendee = vCalAddress(f"mailto:{address}")
        attendee.params["CUTYPE"] = "INDIVIDUAL"
        attendee.params["ROLE"] = "REQ-PARTICIPANT"
        attendee.params["PARTSTAT"] = "NEEDS-ACTION"
        attendee.params["RSVP"] = "TRUE"
        event.add("attendee", attendee)
    event.add("sequence", meeting.sequence)
    event.add("status", status)
    calendar.add_component(event)
    # A VTIMEZONE for each TZID used; its rules only need to cover the meeting.
    calendar.add_missing_timezones(
        first_date=(meeting.start - timedelta(days=366)).date(), last_date=(meeting.end + timedelta(days=366)).date()
    )
    return calendar.to_ical()


def _organizer(sender: str) -> vCalAddress:
    """DEFAULT_FROM_EMAIL, which may be "Name <address>", as an ORGANIZER property."""
    name, address = parseaddr(sender)
    organizer = vCalAddress(f"mailto:{address or sender}")
    if name:
        organizer.params["CN"] = name
    return organizer
