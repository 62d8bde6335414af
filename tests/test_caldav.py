"""Events and reminders on a real CalDAV server (Radicale on loopback): created, read back, replaced, deleted, refused.

The actions that write them are in test_calendar_actions.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from integrations import calendar
from integrations.calendar.caldav import CalDavCalendar, CalDavReminders
from integrations.errors import IntegrationError
from tests.processes import free_port
from tests.radicale import only

BERLIN = ZoneInfo("Europe/Berlin")
UID = "mailroom.7.event.0123456789abcdef@acme.example"


def _meeting(**fields) -> calendar.Meeting:
    # Friday before the clocks go forward in Berlin (Sunday 30 March 2031).
    values = {
        "uid": UID,
        "title": "Refund review",
        "start": datetime(2031, 3, 28, 10, 0, tzinfo=BERLIN),
        "end": datetime(2031, 3, 28, 10, 45, tzinfo=BERLIN),
        "organizer": "Mailroom <mailroom@acme.example>",
        "attendees": ("dana@customer.example", "bob@acme.example"),
        "location": "Room 4",
        **fields,
    }
    return calendar.Meeting(**values)


def _reminder(**fields) -> calendar.Reminder:
    values = {"uid": "mailroom.8.reminder.0123@acme.example", "title": "Call Dana back", **fields}
    values.setdefault("due", datetime(2031, 3, 31, 9, 0, tzinfo=BERLIN))
    return calendar.Reminder(**values)


# --- Events ---------------------------------------------------------------------------------------


def test_the_invitation_and_its_cancellation_parse_with_their_methods():
    invitation = Calendar.from_ical(calendar.invitation(_meeting()))
    cancellation = Calendar.from_ical(calendar.cancellation(_meeting(sequence=1)))

    assert (invitation["METHOD"], cancellation["METHOD"]) == ("REQUEST", "CANCEL")
    invited, cancelled = invitation.walk("VEVENT")[0], cancellation.walk("VEVENT")[0]
    assert invited["UID"] == cancelled["UID"] == UID
    assert (invited["STATUS"], cancelled["STATUS"]) == ("CONFIRMED", "CANCELLED")
    assert cancelled["SEQUENCE"] > invited["SEQUENCE"]
    assert invited["ORGANIZER"].params["CN"] == "Mailroom"
    # By email the attendees' own clients schedule: no server-side hint there.
    assert all("SCHEDULE-AGENT" not in a.params for a in invited["ATTENDEE"])


def test_an_event_is_kept_as_the_invitation_describes_it(radicale, settings):
    radicale.settings(settings)

    where = CalDavCalendar().save_event(_meeting())

    assert where.startswith(radicale.calendar_url)
    stored = only(list(radicale.objects().values()))
    assert "METHOD" not in stored  # RFC 4791: objects in a calendar carry no iTIP method
    assert [tz["TZID"] for tz in stored.walk("VTIMEZONE")] == ["Europe/Berlin"]
    event = only(stored.walk("VEVENT"))
    assert event["UID"] == UID
    assert event["SUMMARY"] == "Refund review"
    assert event["LOCATION"] == "Room 4"
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTART").isoformat() == "2031-03-28T10:00:00+01:00"
    assert event.decoded("DTEND").isoformat() == "2031-03-28T10:45:00+01:00"
    assert event["SEQUENCE"] == 0
    assert str(event["ORGANIZER"]) == "mailto:mailroom@acme.example"
    assert [str(a) for a in event["ATTENDEE"]] == ["mailto:dana@customer.example", "mailto:bob@acme.example"]
    # The invitations went by email: a server that schedules must not send its own.
    assert {a.params["SCHEDULE-AGENT"] for a in [event["ORGANIZER"], *event["ATTENDEE"]]} == {"CLIENT"}


def test_moving_an_event_across_the_clock_change_replaces_it_with_a_higher_sequence(radicale, settings):
    radicale.settings(settings)
    backend = CalDavCalendar()
    backend.save_event(_meeting())

    backend.save_event(
        _meeting(start=datetime(2031, 3, 31, 10, 0, tzinfo=BERLIN), end=datetime(2031, 3, 31, 11, 0, tzinfo=BERLIN))
    )

    event = only(radicale.components("VEVENT"))
    assert event["UID"] == UID
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    # Still 10:00 in Berlin, now in summer time.
    assert event.decoded("DTSTART").isoformat() == "2031-03-31T10:00:00+02:00"
    assert event.decoded("DTEND").isoformat() == "2031-03-31T11:00:00+02:00"
    assert event["SEQUENCE"] == 1


def test_saving_an_unchanged_event_again_keeps_its_sequence(radicale, settings):
    radicale.settings(settings)
    backend = CalDavCalendar()

    first = backend.save_event(_meeting())
    again = backend.save_event(_meeting())

    assert first == again
    assert only(radicale.components("VEVENT"))["SEQUENCE"] == 0


def test_deleting_an_event_removes_it_and_a_second_delete_finds_nothing(radicale, settings):
    radicale.settings(settings)
    backend = CalDavCalendar()
    backend.save_event(_meeting())

    assert backend.delete_event(UID) is True
    assert radicale.objects() == {}
    assert backend.delete_event(UID) is False


def test_the_calendar_can_be_named_by_url_or_left_to_the_first_one(radicale, settings):
    radicale.settings(settings)
    other = radicale.make_calendar("Personal", "personal")

    settings.CALDAV_CALENDAR = other
    CalDavCalendar().save_event(_meeting(uid="by-url"))
    settings.CALDAV_CALENDAR = "Personal"
    CalDavCalendar().save_event(_meeting(uid="by-name"))

    assert sorted(str(e["UID"]) for e in radicale.components("VEVENT", other)) == ["by-name", "by-url"]
    assert radicale.objects() == {}
    settings.CALDAV_CALENDAR = ""
    assert CalDavCalendar().health().ok


# --- Reminders ------------------------------------------------------------------------------------


def test_a_reminder_is_kept_as_a_todo_due_with_an_alarm(radicale, settings):
    radicale.settings(settings)

    CalDavReminders().save_reminder(_reminder(description="About the refund."))

    todo = only(radicale.components("VTODO"))
    assert todo["UID"] == "mailroom.8.reminder.0123@acme.example"
    assert todo["SUMMARY"] == "Call Dana back"
    assert todo["DESCRIPTION"] == "About the refund."
    assert todo["STATUS"] == "NEEDS-ACTION"
    assert todo["DUE"].params["TZID"] == "Europe/Berlin"
    assert todo.decoded("DUE").isoformat() == "2031-03-31T09:00:00+02:00"
    alarm = only(todo.walk("VALARM"))
    assert alarm["ACTION"] == "DISPLAY"
    assert alarm["TRIGGER"].params["VALUE"] == "DATE-TIME"
    assert alarm.decoded("TRIGGER") == datetime(2031, 3, 31, 7, 0, tzinfo=UTC)


def test_a_reminder_due_at_a_bare_offset_is_written_in_utc(radicale, settings):
    radicale.settings(settings)

    CalDavReminders().save_reminder(_reminder(due=datetime(2031, 3, 4, 9, 0, tzinfo=timezone(timedelta(hours=1)))))

    todo = only(radicale.components("VTODO"))
    assert "TZID" not in todo["DUE"].params
    assert todo.decoded("DUE") == datetime(2031, 3, 4, 8, 0, tzinfo=UTC)


def test_moving_a_reminder_replaces_it_and_deleting_removes_it(radicale, settings):
    radicale.settings(settings)
    backend = CalDavReminders()
    backend.save_reminder(_reminder())

    backend.save_reminder(_reminder(due=datetime(2031, 4, 2, 9, 0, tzinfo=BERLIN)))

    todo = only(radicale.components("VTODO"))
    assert todo.decoded("DUE").isoformat() == "2031-04-02T09:00:00+02:00"
    assert todo["SEQUENCE"] == 1
    assert backend.delete_reminder(str(todo["UID"])) is True
    assert radicale.objects() == {}
    assert backend.delete_reminder(str(todo["UID"])) is False


def test_reminders_go_to_the_todo_list_when_one_is_named(radicale, settings):
    radicale.settings(settings)
    reminders = radicale.make_calendar("Reminders", "reminders")
    settings.CALDAV_TODO_LIST = "Reminders"

    CalDavReminders().save_reminder(_reminder())

    assert len(radicale.components("VTODO", reminders)) == 1
    assert radicale.objects() == {}


# --- Failures -------------------------------------------------------------------------------------


def test_a_wrong_password_is_a_permanent_error_that_names_the_settings(radicale, settings):
    radicale.settings(settings)
    settings.CALDAV_PASSWORD = "not-the-password"

    with pytest.raises(IntegrationError) as caught:
        CalDavCalendar().save_event(_meeting())

    assert caught.value.permanent
    assert "401" in str(caught.value) and "CALDAV_PASSWORD" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    health = CalDavCalendar().health()
    assert not health.ok and "401" in health.detail


def test_a_calendar_the_account_does_not_have_is_a_permanent_error(radicale, settings):
    radicale.settings(settings, calendar="Holidays")

    with pytest.raises(IntegrationError, match="CALDAV_CALENDAR names the calendar 'Holidays'") as caught:
        CalDavCalendar().save_event(_meeting())

    assert caught.value.permanent
    assert "'Work'" in str(caught.value)  # what the account does have
    assert not CalDavCalendar().health().ok


def test_a_server_that_is_down_is_a_transient_error_and_unhealthy(radicale, settings):
    radicale.settings(settings)
    settings.CALDAV_URL = f"http://{radicale.user}:{radicale.password}@127.0.0.1:{free_port()}/"

    with pytest.raises(IntegrationError) as caught:
        CalDavReminders().save_reminder(_reminder())

    assert not caught.value.permanent
    assert "Could not reach 127.0.0.1" in str(caught.value)
    health = CalDavCalendar().health()
    assert not health.ok
    assert radicale.password not in str(caught.value) + health.detail


class _Failing(BaseHTTPRequestHandler):
    """A CalDAV server in trouble: every request gets `status` (and `headers`)."""

    status = 500
    headers_to_send: dict[str, str] = {}
    seen: list[str] = []

    def _answer(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(self.status)
        for name, value in self.headers_to_send.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PROPFIND = do_GET = do_PUT = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def failing_server(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Failing.seen = []
    settings.CALDAV_URL = f"http://127.0.0.1:{server.server_port}/"
    settings.CALDAV_USERNAME, settings.CALDAV_PASSWORD = "dana", "secret"
    settings.CALDAV_CALENDAR, settings.CALDAV_TIMEOUT_SECONDS = "/dana/work/", 5
    yield _Failing
    server.shutdown()
    server.server_close()


def test_a_500_is_transient(failing_server):
    failing_server.status, failing_server.headers_to_send = 500, {}

    with pytest.raises(IntegrationError, match="HTTP 500") as caught:
        CalDavCalendar().delete_event(UID)

    assert not caught.value.permanent
    assert failing_server.seen == ["DELETE /dana/work/mailroom.7.event.0123456789abcdef%40acme.example.ics"]


def test_a_503_with_retry_after_is_transient_and_says_when(failing_server):
    failing_server.status, failing_server.headers_to_send = 503, {"Retry-After": "120"}

    with pytest.raises(IntegrationError) as caught:
        CalDavCalendar().save_event(_meeting())

    assert not caught.value.permanent
    assert caught.value.retry_after == 120
    assert not CalDavCalendar().health().ok
