"""schedule_meeting and set_reminder with a CalDAV server (Radicale on loopback): the invitation by email as
before, the event or reminder kept in the calendar, and undo removing it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from actions.executor import queue_action, run_action, undo_action
from actions.handlers import UndoRefused, get_handler
from actions.handlers.calendar import send_due_reminders
from integrations import outbox
from integrations.models import Circuit, LocalReminder, ReminderStatus
from tests.processes import free_port
from tests.radicale import only

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _calendar_settings(settings):
    settings.DEFAULT_FROM_EMAIL = "Mailroom <mailroom@acme.example>"
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.ALLOWED_RECIPIENT_DOMAINS = []
    settings.SEND_DELAY_SECONDS = 0
    settings.RATE_LIMITS_PER_HOUR = {}


def _schedule(make_action, make_email):
    email = make_email(from_address="dana@customer.example")
    params = {
        "title": "Refund review",
        "start": "2031-03-31T10:00:00",
        "timezone": "Europe/Berlin",
        "attendees": ["dana@customer.example", "bob@acme.example"],
    }
    return queue_action(make_action("schedule_meeting", email=email, params=params), actor="test")


def test_schedule_meeting_invites_by_email_and_keeps_the_event_then_undo_removes_it(
    smtp_server, radicale, settings, make_action, make_email
):
    radicale.settings(settings)
    action = _schedule(make_action, make_email)

    assert run_action(action.pk) == "succeeded"

    action.refresh_from_db()
    invitation = Calendar.from_ical(
        smtp_server.only(outbox.message_id_for(action.pk, "invite")).part("text/calendar").get_content()
    )
    assert invitation["METHOD"] == "REQUEST"
    event = only(radicale.components("VEVENT"))
    # The attendees' clients and the server know it as one event.
    assert event["UID"] == invitation.walk("VEVENT")[0]["UID"] == action.result["uid"]
    assert event.decoded("DTSTART").isoformat() == "2031-03-31T10:00:00+02:00"
    assert action.result["kept_in"] == "caldav"
    assert action.undo_data["kept_at"].startswith(radicale.calendar_url)

    details = undo_action(action, actor="test")

    assert radicale.objects() == {}
    assert details["removed_from"] == "caldav" and details["was_there"] is True
    cancel = Calendar.from_ical(
        smtp_server.only(outbox.message_id_for(action.pk, "cancel")).part("text/calendar").get_content()
    )
    assert cancel["METHOD"] == "CANCEL"
    assert cancel.walk("VEVENT")[0]["SEQUENCE"] > invitation.walk("VEVENT")[0]["SEQUENCE"]


def test_schedule_meeting_waits_for_a_calendar_that_is_down_before_inviting(
    smtp_server, radicale, settings, make_action, make_email
):
    radicale.settings(settings)
    settings.CALDAV_URL = f"http://127.0.0.1:{free_port()}/"
    action = _schedule(make_action, make_email)

    assert run_action(action.pk) == "failed"

    action.refresh_from_db()
    assert "Could not reach" in action.last_error
    assert smtp_server.received == []
    assert Circuit.objects.get(name="calendar").failures == 1


def test_an_invitation_the_mail_server_refuses_for_now_counts_on_mail_not_the_calendar(
    smtp_server, radicale, settings, make_action, make_email
):
    radicale.settings(settings)
    smtp_server.refuse_next(451)
    action = _schedule(make_action, make_email)

    assert run_action(action.pk) == "failed"

    assert len(radicale.components("VEVENT")) == 1  # the calendar worked; the mail server did not
    assert Circuit.objects.get(name="mail").failures == 1
    assert not Circuit.objects.filter(name="calendar").exists()


def test_set_reminder_keeps_one_todo_across_redelivery_and_undo_removes_it(radicale, settings, make_action, make_email):
    radicale.settings(settings)
    action = queue_action(
        make_action("set_reminder", email=make_email(), params={"text": "Call Dana back", "in_hours": 24}), actor="t"
    )
    assert run_action(action.pk) == "succeeded"
    action.refresh_from_db()
    handler = get_handler("set_reminder")

    # Delivered again (a worker died before recording it): the same reminder, the same copy.
    again = handler.execute(action, handler.parse(action))

    assert again.undo_data == action.undo_data
    todo = only(radicale.components("VTODO"))
    reminder = LocalReminder.objects.get(action=action)
    assert todo["UID"] == action.undo_data["uid"] == action.result["uid"]
    assert todo.decoded("DUE") == reminder.remind_at.replace(microsecond=0)
    assert todo["SEQUENCE"] == 0
    assert "Question number" in todo["DESCRIPTION"]  # what it is about, as the reminder mail says

    details = undo_action(action, actor="test")

    assert radicale.objects() == {}
    assert details["status"] == ReminderStatus.CANCELLED and details["was_there"] is True
    assert LocalReminder.objects.get(action=action).status == ReminderStatus.CANCELLED


def test_set_reminder_refused_by_the_server_keeps_no_local_reminder(radicale, settings, make_action, make_email):
    radicale.settings(settings)
    settings.CALDAV_PASSWORD = "wrong"
    action = queue_action(
        make_action("set_reminder", email=make_email(), params={"text": "Call Dana back", "in_hours": 1}), actor="t"
    )

    assert run_action(action.pk) == "dead"

    assert not LocalReminder.objects.filter(action=action).exists()


def test_undoing_a_reminder_already_sent_is_refused_and_leaves_the_todo(
    smtp_server, radicale, settings, make_action, make_email
):
    radicale.settings(settings)
    action = queue_action(
        make_action("set_reminder", email=make_email(), params={"text": "Call Dana back", "in_hours": 1}), actor="t"
    )
    assert run_action(action.pk) == "succeeded"
    send_due_reminders(datetime.now(UTC) + timedelta(hours=2))
    action.refresh_from_db()

    with pytest.raises(UndoRefused, match="already sent"):
        undo_action(action, actor="test")

    assert len(radicale.components("VTODO")) == 1


def test_with_the_local_backends_nothing_is_kept_outside(smtp_server, settings, make_action, make_email):
    settings.CALENDAR_BACKEND, settings.REMINDER_BACKEND = "email", "local"
    action = _schedule(make_action, make_email)

    assert run_action(action.pk) == "succeeded"

    action.refresh_from_db()
    assert "kept_in" not in action.result and "kept_in" not in action.undo_data
    assert "removed_from" not in undo_action(action, actor="test")
