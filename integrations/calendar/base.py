"""The calendar and reminder interfaces, and the backends that keep nothing outside Mailroom.

Invitations always go by email (ical.py builds them); a calendar backend
also writes the event into a calendar people look at. Reminders are always
mailed when due (actions.handlers.calendar); a reminder backend also keeps
them where a person's reminders app shows them.
"""

from __future__ import annotations

from integrations.base import Backend
from integrations.calendar.ical import Meeting, Reminder


class CalendarBackend(Backend):
    """Where a meeting's event is written, besides the invitation by email."""

    capability = "calendar"

    def save_event(self, meeting: Meeting) -> str:
        """Create the event, or replace the one with the meeting's UID; return where it is (a URL or the UID).

        Saving it again unchanged (a retried action) changes nothing; a changed
        event gets a higher SEQUENCE than the one it replaces.
        """
        raise NotImplementedError

    def delete_event(self, uid: str) -> bool:
        """Delete the event with this UID; False when there was none."""
        raise NotImplementedError


class ReminderBackend(Backend):
    """Where a reminder is kept for a person's reminders app, besides the email sent when it is due."""

    capability = "reminders"

    def save_reminder(self, reminder: Reminder) -> str:
        """Create the reminder, or replace the one with its UID, as save_event does; return where it is."""
        raise NotImplementedError

    def delete_reminder(self, uid: str) -> bool:
        """Delete the reminder with this UID; False when there was none."""
        raise NotImplementedError


class EmailOnlyCalendar(CalendarBackend):
    """No calendar besides the attendees' own: the emailed invitation is the event."""

    name = "email"

    def save_event(self, meeting: Meeting) -> str:
        return meeting.uid

    def delete_event(self, uid: str) -> bool:
        return False


class LocalReminders(ReminderBackend):
    """Reminders only in Mailroom, mailed when due."""

    name = "local"

    def save_reminder(self, reminder: Reminder) -> str:
        return reminder.uid

    def delete_reminder(self, uid: str) -> bool:
        return False
