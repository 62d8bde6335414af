"""Calendars and reminders: iCalendar invitations by email (ical), and where events and reminders are kept.

CALENDAR_BACKEND and REMINDER_BACKEND choose: email/local (nothing outside
Mailroom), caldav (any CalDAV server; Apple Reminders reads VTODO through
iCloud) or apple (Calendar and Reminders on this Mac).
"""

from __future__ import annotations

from django.conf import settings

from integrations.calendar.base import CalendarBackend, EmailOnlyCalendar, LocalReminders, ReminderBackend
from integrations.calendar.ical import (
    CANCEL_CONTENT_TYPE,
    FILENAME,
    PRODUCT_ID,
    REQUEST_CONTENT_TYPE,
    Meeting,
    Reminder,
    cancellation,
    invitation,
)


def calendar_backend() -> CalendarBackend:
    """The calendar backend CALENDAR_BACKEND names."""
    if settings.CALENDAR_BACKEND == "caldav":
        from integrations.calendar.caldav import CalDavCalendar

        return CalDavCalendar()
    if settings.CALENDAR_BACKEND == "apple":
        from integrations.apple import AppleCalendar

        return AppleCalendar()
    return EmailOnlyCalendar()


def reminder_backend() -> ReminderBackend:
    """The reminder backend REMINDER_BACKEND names."""
    if settings.REMINDER_BACKEND == "caldav":
        from integrations.calendar.caldav import CalDavReminders

        return CalDavReminders()
    if settings.REMINDER_BACKEND == "apple":
        from integrations.apple import AppleReminders

        return AppleReminders()
    return LocalReminders()


__all__ = [
    "CANCEL_CONTENT_TYPE",
    "FILENAME",
    "PRODUCT_ID",
    "REQUEST_CONTENT_TYPE",
    "CalendarBackend",
    "Meeting",
    "Reminder",
    "ReminderBackend",
    "calendar_backend",
    "cancellation",
    "invitation",
    "reminder_backend",
]
