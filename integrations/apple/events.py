"""Apple Calendar and Reminders: a meeting's event and a reminder, kept on this Mac and found again by our UID."""

from __future__ import annotations

from django.conf import settings

from integrations.apple import scripts
from integrations.apple.app import AppleApp
from integrations.calendar.base import CalendarBackend, Reminder, ReminderBackend
from integrations.calendar.ical import Meeting
from integrations.errors import IntegrationError


class AppleCalendar(AppleApp, CalendarBackend):
    """Writes meetings into APPLE_CALENDAR in Calendar.app.

    Calendar gives each event its own UID and ours cannot be set, so the
    event's URL carries a marker with the meeting's UID: saving again replaces
    the event, and deleting finds it by the marker (or by Calendar's UID,
    which save_event returns).
    """

    name = "apple"
    app = "Apple Calendar"

    def save_event(self, meeting: Meeting) -> str:
        return self.run(scripts.save_event(calendar=settings.APPLE_CALENDAR, meeting=meeting))

    def delete_event(self, uid: str) -> bool:
        return _deleted(self.run(scripts.delete_event(calendar=settings.APPLE_CALENDAR, uid=uid)))

    def health_script(self) -> str:
        return scripts.calendar_health(calendar=settings.APPLE_CALENDAR)


class AppleReminders(AppleApp, ReminderBackend):
    """Keeps reminders in APPLE_REMINDERS_LIST in Reminders.app, due and reminding at the reminder's time.

    Reminders have no URL, so the notes end with a marker line holding our UID.
    """

    name = "apple"
    app = "Apple Reminders"

    def save_reminder(self, reminder: Reminder) -> str:
        return self.run(scripts.save_reminder(reminders_list=settings.APPLE_REMINDERS_LIST, reminder=reminder))

    def delete_reminder(self, uid: str) -> bool:
        return _deleted(self.run(scripts.delete_reminder(reminders_list=settings.APPLE_REMINDERS_LIST, uid=uid)))

    def health_script(self) -> str:
        return scripts.reminders_health(reminders_list=settings.APPLE_REMINDERS_LIST)


def _deleted(answer: str) -> bool:
    """Whether a delete script, which returns how many items it deleted, deleted any."""
    try:
        return int(answer.strip()) > 0
    except ValueError:
        raise IntegrationError(f"Expected a count from the app, got {answer[:100]!r}.", permanent=True) from None
