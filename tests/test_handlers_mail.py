"""The mail and calendar handlers, checked at a real SMTP server: what arrives, header by header, and how often."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from icalendar import Calendar
from pydantic import ValidationError

from actions.executor import queue_action, run_action
from actions.handlers import ActionFailed, UndoRefused, get_handler
from actions.handlers.calendar import send_due_reminders
from actions.handlers.outgoing import prefixed_subject
from actions.models import ActionStatus, Attachment
from integrations import outbox
from integrations.errors import IntegrationError
from integrations.models import LocalReminder, OutboxMessage, OutboxStatus, ReminderStatus
from tests.concurrency import run_at_once

# The smtp_server fixture: a real SMTP server on the loopback interface.
pytestmark = pytest.mark.django_db

THREAD_ROOT = "<root-1234@customer.example>"
EMAIL_ID = "<order-1234@customer.example>"
INJECTION = "Invoice\r\nBcc: evil@example.com"
MEETING_START = "2031-03-04T10:00:00"


@pytest.fixture(autouse=True)
def _mail_settings(settings, tmp_path):
    settings.DEFAULT_FROM_EMAIL = "mailroom@acme.example"
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def customer_email(make_email):
    return make_email(
        message_id=EMAIL_ID,
        references=[THREAD_ROOT],
        in_reply_to=THREAD_ROOT,
        subject="Refund for order 1234",
        from_name="Dana Customer",
        from_address="dana@customer.example",
        text_body="Hello,\n\nI was charged twice for order 1234.\n\nDana",
        received_at=timezone.now() - timedelta(days=3),
    )


def _execute(action):
    handler = get_handler(action.type)
    return handler.execute(action, handler.parse(action))


def _undo(action, outcome):
    action.undo_data = outcome.undo_data
    action.save(update_fields=["undo_data"])
    handler = get_handler(action.type)
    return handler.undo(action, handler.parse(action))


def _error_fields(action_type: str, params: dict) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        get_handler(action_type).params.model_validate(params)
    return {".".join(map(str, error["loc"])) or "params": error["msg"] for error in caught.value.errors()}


# --- send_reply ------------------------------------------------------------------------------


def test_send_reply_answers_in_the_thread(smtp_server, make_action, customer_email):
    action = make_action(
        "send_reply", email=customer_email, params={"body": "We refunded you.", "html_body": "<p>We refunded you.</p>"}
    )

    outcome = _execute(action)

    message_id = outbox.message_id_for(action.pk, "reply")
    received = smtp_server.only(message_id)
    headers = received.message
    assert headers["In-Reply-To"] == EMAIL_ID
    assert headers["References"].split() == [THREAD_ROOT, EMAIL_ID]
    assert headers["Subject"] == "Re: Refund for order 1234"
    assert headers["To"] == "dana@customer.example"
    assert headers["From"] == "mailroom@acme.example"
    assert headers["Reply-To"] == "support@acme.example"
    assert headers["Auto-Submitted"] == "auto-replied"
    assert received.part("text/plain").get_content().strip() == "We refunded you."
    assert received.part("text/html").get_content().strip() == "<p>We refunded you.</p>"
    assert outcome.result == {
        "message_id": message_id,
        "to": ["dana@customer.example"],
        "cc": [],
        "subject": "Re: Refund for order 1234",
    }


def test_send_reply_goes_to_reply_to_and_copies_cc(smtp_server, make_action, customer_email):
    customer_email.headers = [
        ["From", "Dana <dana@customer.example>"],
        ["Reply-To", "Billing <billing@customer.example>"],
    ]
    customer_email.save()
    action = make_action("send_reply", email=customer_email, params={"body": "Done.", "cc": ["accounts@acme.example"]})
    handler = get_handler("send_reply")

    assert handler.recipients(action, handler.parse(action)) == ["billing@customer.example", "accounts@acme.example"]
    _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "reply"))
    assert received.message["To"] == "billing@customer.example"
    assert received.message["Cc"] == "accounts@acme.example"
    assert sorted(received.rcpt_tos) == ["accounts@acme.example", "billing@customer.example"]


def test_send_reply_does_not_double_the_re_prefix(smtp_server, make_action, make_email):
    action = make_action("send_reply", email=make_email(subject="RE: Refund"), params={"body": "Done."})

    _execute(action)

    assert smtp_server.received[0].message["Subject"] == "RE: Refund"


def test_prefixed_subject_adds_each_prefix_once():
    assert prefixed_subject("Re", "re:Refund") == "re:Refund"
    assert prefixed_subject("Re", "Fwd: Refund") == "Re: Fwd: Refund"
    assert prefixed_subject("Fwd", "FW: Refund") == "FW: Refund"
    assert prefixed_subject("Fwd", "Refund") == "Fwd: Refund"
    assert prefixed_subject("Re", "") == "Re: (no subject)"


@pytest.mark.security
def test_send_reply_keeps_a_strangers_subject_on_one_line(smtp_server, make_action, make_email):
    action = make_action("send_reply", email=make_email(subject=INJECTION), params={"body": "Done."})

    _execute(action)

    received = smtp_server.received[0]
    assert received.message["Subject"] == "Re: Invoice Bcc: evil@example.com"
    assert received.message["Bcc"] is None
    assert all("evil" not in address for address in received.rcpt_tos)


def test_send_reply_keeps_only_well_formed_message_ids_in_references(smtp_server, make_action, make_email):
    email = make_email(message_id="bare-id@customer.example", references=["<a@x>\r\nBcc: evil@example.com", 7])
    action = make_action("send_reply", email=email, params={"body": "Done."})

    _execute(action)

    headers = smtp_server.received[0].message
    assert headers["In-Reply-To"] == "<bare-id@customer.example>"
    assert headers["References"].split() == ["<a@x>", "<bare-id@customer.example>"]


def test_executing_send_reply_twice_sends_once(smtp_server, make_action, customer_email):
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})

    first = _execute(action)
    second = _execute(action)

    assert smtp_server.message_id_counts() == {outbox.message_id_for(action.pk, "reply"): 1}
    assert first.result == second.result


def test_send_reply_waits_while_its_message_is_being_sent_elsewhere(smtp_server, make_action, customer_email):
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})
    message = outbox.store_message(
        message_id=outbox.message_id_for(action.pk, "reply"), to=["dana@customer.example"], subject="x", text_body="x"
    )
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.SENDING)

    with pytest.raises(IntegrationError) as caught:
        _execute(action)

    assert caught.value.permanent is False
    assert smtp_server.received == []


def test_send_reply_fails_for_good_when_its_message_is_held(smtp_server, make_action, customer_email):
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})
    message = outbox.store_message(
        message_id=outbox.message_id_for(action.pk, "reply"), to=["dana@customer.example"], subject="x", text_body="x"
    )
    OutboxMessage.objects.filter(pk=message.pk).update(status=OutboxStatus.HELD)

    with pytest.raises(ActionFailed, match="held") as caught:
        _execute(action)

    assert caught.value.permanent is True
    assert smtp_server.received == []


def test_send_reply_on_451_is_transient_and_the_retry_sends_once(smtp_server, make_action, customer_email):
    smtp_server.refuse_next(451)
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})
    message_id = outbox.message_id_for(action.pk, "reply")

    with pytest.raises(IntegrationError) as caught:
        _execute(action)

    assert caught.value.permanent is False
    assert OutboxMessage.objects.get(message_id=message_id).status == OutboxStatus.PENDING
    _execute(action)
    assert smtp_server.message_id_counts() == {message_id: 1}


def test_send_reply_on_550_is_permanent_and_a_persons_retry_tries_again(smtp_server, make_action, customer_email):
    smtp_server.refuse_next(550)
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})
    message_id = outbox.message_id_for(action.pk, "reply")

    with pytest.raises(IntegrationError) as caught:
        _execute(action)

    assert caught.value.permanent is True
    assert OutboxMessage.objects.get(message_id=message_id).status == OutboxStatus.FAILED
    assert smtp_server.received == []
    # Only a person's retry runs a dead action again.
    _execute(action)
    assert smtp_server.message_id_counts() == {message_id: 1}


def test_send_reply_needs_an_email(smtp_server, make_action):
    action = make_action("send_reply", email=None, params={"body": "Done."})

    with pytest.raises(ActionFailed, match="needs an email to reply to") as caught:
        _execute(action)

    assert caught.value.permanent is True
    assert get_handler("send_reply").recipients(action, get_handler("send_reply").parse(action)) == []


def test_send_reply_params_name_what_is_wrong():
    assert "body" in _error_fields("send_reply", {"body": "   "})
    assert "cc.1" in _error_fields("send_reply", {"body": "Hi", "cc": ["ok@acme.example", "Bob <bob@acme.example>"]})
    assert "bcc" in _error_fields("send_reply", {"body": "Hi", "bcc": ["bob@acme.example"]})


def test_the_executor_runs_a_reply_and_records_what_was_sent(smtp_server, make_action, customer_email, settings):
    settings.SEND_DELAY_SECONDS = 0
    action = queue_action(make_action("send_reply", email=customer_email, params={"body": "Done."}), actor="test")

    assert run_action(action.pk) == "succeeded"

    action.refresh_from_db()
    message_id = outbox.message_id_for(action.pk, "reply")
    assert action.result["message_id"] == message_id
    assert smtp_server.message_id_counts() == {message_id: 1}


def test_the_executor_retries_a_reply_the_server_deferred(smtp_server, make_action, customer_email, settings):
    settings.SEND_DELAY_SECONDS = 0
    smtp_server.refuse_next(451)
    action = queue_action(make_action("send_reply", email=customer_email, params={"body": "Done."}), actor="test")

    assert run_action(action.pk) == "failed"

    action.refresh_from_db()
    assert action.status == ActionStatus.FAILED
    assert "451" in action.last_error
    assert OutboxMessage.objects.get(action=action).status == OutboxStatus.PENDING
    assert smtp_server.received == []


# --- forward_email --------------------------------------------------------------------------


def _attach(email, filename: str, content: bytes | None, content_type: str = "application/pdf") -> Attachment:
    attachment = Attachment(email=email, filename=filename, content_type=content_type, size=len(content or b""))
    if content is not None:
        attachment.file.save(filename.replace("\r\n", "_"), ContentFile(content), save=False)
    attachment.save()
    return attachment


def test_forward_email_sends_the_note_the_original_and_its_attachments(smtp_server, make_action, customer_email):
    _attach(customer_email, "invoice.pdf", b"%PDF-1.4 invoice")
    _attach(customer_email, "lost.pdf", None)
    action = make_action(
        "forward_email",
        email=customer_email,
        params={"to": ["billing@acme.example"], "note": "Please check the double charge."},
    )

    outcome = _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "forward"))
    headers = received.message
    assert headers["Subject"] == "Fwd: Refund for order 1234"
    assert headers["To"] == "billing@acme.example"
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["In-Reply-To"] is None
    text = received.part("text/plain").get_content()
    assert text.index("Please check the double charge.") < text.index("Forwarded message") < text.index("charged twice")
    assert "From: Dana Customer <dana@customer.example>" in text
    assert "Subject: Refund for order 1234" in text
    pdf = received.part("application/pdf")
    assert pdf.get_filename() == "invoice.pdf"
    assert pdf.get_content() == b"%PDF-1.4 invoice"
    assert outcome.result["attachments"] == ["invoice.pdf"]
    assert outcome.result["missing_attachments"] == ["lost.pdf"]


def test_forward_email_can_leave_the_attachments_out(smtp_server, make_action, customer_email):
    _attach(customer_email, "invoice.pdf", b"%PDF-1.4 invoice")
    action = make_action(
        "forward_email", email=customer_email, params={"to": ["billing@acme.example"], "include_attachments": False}
    )

    _execute(action)

    parts = [part.get_content_type() for part in smtp_server.received[0].message.walk()]
    assert "application/pdf" not in parts


@pytest.mark.security
def test_forward_email_keeps_a_strangers_attachment_name_and_type_on_one_line(smtp_server, make_action, customer_email):
    _attach(customer_email, INJECTION + ".pdf", b"%PDF", content_type="application/pdf\r\nBcc: evil@example.com")
    action = make_action("forward_email", email=customer_email, params={"to": ["billing@acme.example"]})

    _execute(action)

    received = smtp_server.received[0]
    assert received.message["Bcc"] is None
    assert received.part("application/octet-stream").get_filename() == "Invoice Bcc: evil@example.com.pdf"


def test_forward_email_params_need_a_recipient():
    assert "to" in _error_fields("forward_email", {"to": []})
    assert "to.0" in _error_fields("forward_email", {"to": ["not an address"]})


# --- approve_request --------------------------------------------------------------------------


def test_approve_request_answers_in_the_thread(smtp_server, make_action, customer_email):
    action = make_action(
        "approve_request",
        email=customer_email,
        params={
            "decision": "approve",
            "comment": "Go ahead.",
            "reference": "PO-7",
            "amount": 1200,
            "currency": "eur",
        },
    )

    outcome = _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "approval"))
    assert received.message["In-Reply-To"] == EMAIL_ID
    assert received.message["Subject"] == "Re: Refund for order 1234"
    assert received.message["Auto-Submitted"] == "auto-replied"
    text = received.part("text/plain").get_content()
    assert text.startswith("Your request PO-7 for 1,200.00 EUR has been approved.")
    assert "Go ahead." in text
    assert outcome.result["decision"] == "approve"


def test_approve_request_says_so_when_it_rejects(smtp_server, make_action, customer_email):
    action = make_action("approve_request", email=customer_email, params={"decision": "reject"})

    _execute(action)

    assert smtp_server.received[0].part("text/plain").get_content().strip() == "Your request has been rejected."


def test_approve_request_params_name_what_is_wrong():
    assert "decision" in _error_fields("approve_request", {"decision": "maybe"})
    assert "amount" in _error_fields("approve_request", {"decision": "approve", "amount": -1})
    assert "amount" in _error_fields("approve_request", {"decision": "approve", "amount": True})
    assert "currency" in _error_fields("approve_request", {"decision": "approve", "amount": 5, "currency": "EURO"})
    assert "without an amount" in _error_fields("approve_request", {"decision": "approve", "currency": "EUR"})["params"]


# --- follow_up ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [{"in_reply_to": EMAIL_ID}, {"references": [THREAD_ROOT, EMAIL_ID]}, {"parent": "the email"}],
    ids=["in-reply-to", "references", "parent"],
)
def test_follow_up_is_skipped_when_a_reply_arrived(smtp_server, make_action, make_email, customer_email, answer):
    if answer.get("parent"):
        answer = {"parent": customer_email}
    reply = make_email(received_at=timezone.now() - timedelta(days=1), **answer)
    action = make_action("follow_up", email=customer_email, params={"draft": "Any news?"})

    outcome = _execute(action)

    assert outcome.result == {"skipped": "a reply arrived", "reply_id": reply.pk}
    assert smtp_server.received == []


def test_follow_up_ignores_messages_that_do_not_answer_the_email(smtp_server, make_action, make_email, customer_email):
    make_email(in_reply_to=EMAIL_ID, received_at=customer_email.received_at - timedelta(hours=1))  # earlier
    make_email(in_reply_to=EMAIL_ID, mailbox="sales@acme.example", received_at=timezone.now())  # elsewhere
    make_email(references=[EMAIL_ID.upper()], received_at=timezone.now())  # ids are case-sensitive
    make_email(in_reply_to=THREAD_ROOT, received_at=timezone.now())  # answers another message
    action = make_action("follow_up", email=customer_email, params={"draft": "Any news?"})

    outcome = _execute(action)

    assert "skipped" not in outcome.result
    assert len(smtp_server.received) == 1


def test_follow_up_sends_its_draft_as_a_reply_when_nobody_answered(smtp_server, make_action, customer_email):
    action = make_action("follow_up", email=customer_email, params={"draft": "Any news about the refund?"})

    outcome = _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "follow_up"))
    assert received.message["To"] == "dana@customer.example"
    assert received.message["In-Reply-To"] == EMAIL_ID
    assert received.message["Subject"] == "Re: Refund for order 1234"
    assert received.message["Auto-Submitted"] == "auto-replied"
    assert received.part("text/plain").get_content().strip() == "Any news about the refund?"
    assert outcome.result["message_id"] == received.message_id


def test_follow_up_without_a_draft_reminds_the_mailbox(smtp_server, make_action, customer_email):
    action = make_action("follow_up", email=customer_email, params={"due_in_hours": 24})

    _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "follow_up_reminder"))
    assert received.message["To"] == "support@acme.example"
    assert received.message["Subject"] == "No reply yet: Refund for order 1234"
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert received.message["In-Reply-To"] is None
    text = received.part("text/plain").get_content()
    assert "Nobody has answered" in text
    assert "> I was charged twice for order 1234." in text


def test_follow_up_redelivered_after_sending_finishes_instead_of_skipping(
    smtp_server, make_action, make_email, customer_email
):
    smtp_server.refuse_next(451)
    action = make_action("follow_up", email=customer_email, params={"draft": "Any news?"})
    with pytest.raises(IntegrationError):
        _execute(action)
    make_email(in_reply_to=EMAIL_ID, received_at=timezone.now())

    outcome = _execute(action)

    assert "skipped" not in outcome.result
    assert smtp_server.message_id_counts() == {outbox.message_id_for(action.pk, "follow_up"): 1}


def test_follow_up_params_take_one_due_time_and_default_to_48_hours():
    params = get_handler("follow_up").params
    received = datetime(2026, 3, 2, 9, tzinfo=UTC)

    assert params.model_validate({}).due(received) == received + timedelta(hours=48)
    assert params.model_validate({"due_in_hours": 2.5}).due(received) == received + timedelta(hours=2.5)
    assert "not both" in _error_fields("follow_up", {"due_in_hours": 1, "due_at": "2026-03-05T09:00:00Z"})["params"]
    assert "due_at" in _error_fields("follow_up", {"due_at": "2026-03-05T09:00:00"})
    assert "due_in_hours" in _error_fields("follow_up", {"due_in_hours": 0})


# --- schedule_meeting -----------------------------------------------------------------------------


def _meeting(make_action, email, **params):
    values = {
        "title": "Refund review",
        "start": MEETING_START,
        "timezone": "Europe/Berlin",
        "duration_minutes": 45,
        "attendees": ["dana@customer.example", "bob@acme.example"],
        "location": "Room 4",
        "description": "About order 1234.",
        **params,
    }
    return make_action("schedule_meeting", email=email, params=values)


def _calendar_of(received) -> Calendar:
    return Calendar.from_ical(received.part("text/calendar").get_content())


def test_schedule_meeting_sends_an_icalendar_invitation(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email)

    outcome = _execute(action)

    received = smtp_server.only(outbox.message_id_for(action.pk, "invite"))
    assert received.message["To"] == "dana@customer.example, bob@acme.example"
    assert received.message["Subject"] == "Invitation: Refund review @ Tue 04 Mar 2031 10:00 (Europe/Berlin)"
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert "When: Tuesday 04 March 2031, 10:00 to 10:45" in received.part("text/plain").get_content()
    part = received.part("text/calendar")
    assert part.get_param("method") == "REQUEST"
    assert part.get_filename() == "invite.ics"

    calendar = _calendar_of(received)
    assert calendar["METHOD"] == "REQUEST"
    assert [tz["TZID"] for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    event = calendar.walk("VEVENT")[0]
    assert event["UID"] == outcome.result["uid"] == outbox.message_id_for(action.pk, "event").strip("<>")
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTART").isoformat() == "2031-03-04T10:00:00+01:00"
    assert event.decoded("DTEND").isoformat() == "2031-03-04T10:45:00+01:00"
    assert event["SUMMARY"] == "Refund review"
    assert event["LOCATION"] == "Room 4"
    assert event["SEQUENCE"] == 0
    assert str(event["ORGANIZER"]) == "mailto:mailroom@acme.example"
    attendees = event["ATTENDEE"]
    assert [str(a) for a in attendees] == ["mailto:dana@customer.example", "mailto:bob@acme.example"]
    assert all(a.params["RSVP"] == "TRUE" for a in attendees)
    assert "DTSTAMP" in event
    assert outcome.undo_data == {
        "uid": event["UID"],
        "sequence": 0,
        "attendees": ["dana@customer.example", "bob@acme.example"],
        "start": "2031-03-04T10:00:00+01:00",
        "end": "2031-03-04T10:45:00+01:00",
        "timezone": "Europe/Berlin",
    }


def test_schedule_meeting_reads_an_aware_start_in_the_meetings_timezone(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email, start="2031-07-01T08:00:00Z")

    _execute(action)

    event = _calendar_of(smtp_server.received[0]).walk("VEVENT")[0]
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert event.decoded("DTSTART").isoformat() == "2031-07-01T10:00:00+02:00"


def test_schedule_meeting_twice_sends_one_invitation(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email)

    first = _execute(action)
    second = _execute(action)

    assert smtp_server.message_id_counts() == {outbox.message_id_for(action.pk, "invite"): 1}
    assert first.undo_data["uid"] == second.undo_data["uid"]


def test_undoing_schedule_meeting_sends_the_cancellation(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email)
    outcome = _execute(action)

    details = _undo(action, outcome)

    received = smtp_server.only(outbox.message_id_for(action.pk, "cancel"))
    assert received.message["Subject"].startswith("Cancelled: Refund review")
    assert sorted(received.rcpt_tos) == ["bob@acme.example", "dana@customer.example"]
    assert received.part("text/calendar").get_param("method") == "CANCEL"
    calendar = _calendar_of(received)
    assert calendar["METHOD"] == "CANCEL"
    event = calendar.walk("VEVENT")[0]
    assert event["UID"] == outcome.undo_data["uid"]
    assert event["SEQUENCE"] == 1
    assert event["STATUS"] == "CANCELLED"
    assert event.decoded("DTSTART").isoformat() == "2031-03-04T10:00:00+01:00"
    assert details == {
        "uid": outcome.undo_data["uid"],
        "sequence": 1,
        "message_id": received.message_id,
        "attendees": ["dana@customer.example", "bob@acme.example"],
    }


def test_undoing_schedule_meeting_without_a_recorded_invitation_is_refused(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email)

    with pytest.raises(UndoRefused, match="nothing to cancel"):
        get_handler("schedule_meeting").undo(action, get_handler("schedule_meeting").parse(action))

    assert smtp_server.received == []


def test_schedule_meeting_refuses_a_meeting_that_is_over(smtp_server, make_action, customer_email):
    action = _meeting(make_action, customer_email, start="2020-01-01T10:00:00")

    with pytest.raises(ActionFailed, match="ended"):
        _execute(action)

    assert smtp_server.received == []


def test_schedule_meeting_params_name_what_is_wrong():
    valid = {"title": "Sync", "start": MEETING_START, "attendees": ["bob@acme.example"]}

    assert "timezone" in _error_fields("schedule_meeting", {**valid, "timezone": "Mars/Olympus"})
    assert (
        "clocks change"
        in _error_fields("schedule_meeting", {**valid, "start": "2031-03-30T02:30:00", "timezone": "Europe/Berlin"})[
            "start"
        ]
    )
    assert "duration_minutes" in _error_fields("schedule_meeting", {**valid, "duration_minutes": 4})
    assert "duration_minutes" in _error_fields("schedule_meeting", {**valid, "duration_minutes": 1441})
    assert "attendees" in _error_fields("schedule_meeting", {**valid, "attendees": []})
    assert "title" in _error_fields("schedule_meeting", {**valid, "title": ""})
    start = get_handler("schedule_meeting").params.model_validate(valid).start
    assert start.isoformat() == "2031-03-04T10:00:00+00:00"


# --- set_reminder ---------------------------------------------------------------------------------


def _reminder_action(make_action, email, **params):
    return make_action("set_reminder", email=email, params={"text": "Call Dana back", **params})


def test_set_reminder_keeps_a_reminder_for_the_mailbox(make_action, customer_email):
    before = timezone.now()
    action = _reminder_action(make_action, customer_email, in_hours=2)

    outcome = _execute(action)

    reminder = LocalReminder.objects.get(action=action)
    assert reminder.recipient == "support@acme.example"
    assert reminder.status == ReminderStatus.PENDING
    assert reminder.email == customer_email
    assert before + timedelta(hours=2) <= reminder.remind_at <= timezone.now() + timedelta(hours=2)
    assert outcome.result["reminder_id"] == reminder.pk
    assert outcome.undo_data == {"reminder_id": reminder.pk}


def test_set_reminder_twice_keeps_one_reminder(make_action, customer_email):
    action = _reminder_action(make_action, customer_email, remind_at="2031-03-04T09:00:00+01:00")

    _execute(action)
    _execute(action)

    assert LocalReminder.objects.filter(action=action).count() == 1
    assert LocalReminder.objects.get(action=action).remind_at == datetime(2031, 3, 4, 8, tzinfo=UTC)


def test_set_reminder_goes_to_the_assignee_when_there_is_one(make_action, customer_email, bob):
    from teams.models import TeamMember

    member = TeamMember.objects.create(user=bob)
    action = _reminder_action(make_action, customer_email, in_hours=1)
    action.assignee = member
    action.save(update_fields=["assignee"])

    _execute(action)

    assert LocalReminder.objects.get(action=action).recipient == "bob@acme.example"


def test_set_reminder_refuses_a_recipient_outside_the_allowed_domains(make_action, customer_email):
    action = _reminder_action(make_action, customer_email, in_hours=1, recipient="someone@elsewhere.example")

    with pytest.raises(ActionFailed, match="allowed domains"):
        _execute(action)

    assert not LocalReminder.objects.exists()


def test_undoing_set_reminder_cancels_it(make_action, customer_email):
    action = _reminder_action(make_action, customer_email, in_hours=1)
    outcome = _execute(action)

    details = _undo(action, outcome)

    assert LocalReminder.objects.get(action=action).status == ReminderStatus.CANCELLED
    assert details["status"] == ReminderStatus.CANCELLED
    assert send_due_reminders(timezone.now() + timedelta(hours=2)) == 0


def test_undoing_set_reminder_is_refused_once_it_was_sent(smtp_server, make_action, customer_email):
    action = _reminder_action(make_action, customer_email, in_hours=1)
    outcome = _execute(action)
    send_due_reminders(timezone.now() + timedelta(hours=2))

    with pytest.raises(UndoRefused, match="already sent"):
        _undo(action, outcome)

    assert LocalReminder.objects.get(action=action).status == ReminderStatus.SENT


def test_send_due_reminders_mails_the_due_ones_once(smtp_server, make_action, customer_email):
    due = _reminder_action(make_action, customer_email, in_hours=1)
    later = _reminder_action(make_action, customer_email, in_hours=5)
    _execute(due)
    _execute(later)
    now = timezone.now() + timedelta(hours=2)

    assert send_due_reminders(now) == 1
    assert send_due_reminders(now) == 0

    reminder = LocalReminder.objects.get(action=due)
    message_id = outbox.message_id_for(due.pk, f"reminder-{reminder.pk}")
    received = smtp_server.only(message_id)
    assert received.message["To"] == "support@acme.example"
    assert received.message["Subject"] == "Reminder: Call Dana back"
    assert received.message["Auto-Submitted"] == "auto-generated"
    assert 'About the email "Refund for order 1234"' in received.part("text/plain").get_content()
    assert reminder.status == ReminderStatus.SENT
    assert LocalReminder.objects.get(action=later).status == ReminderStatus.PENDING


def test_send_due_reminders_delivers_later_what_the_server_refused_for_now(smtp_server, make_action, customer_email):
    action = _reminder_action(make_action, customer_email, in_hours=1)
    _execute(action)
    now = timezone.now() + timedelta(hours=2)
    smtp_server.refuse_next(451)

    assert send_due_reminders(now) == 0
    assert LocalReminder.objects.get(action=action).status == ReminderStatus.SENT
    assert send_due_reminders(now + timedelta(minutes=1)) == 1
    assert send_due_reminders(now + timedelta(minutes=2)) == 0

    assert list(smtp_server.message_id_counts().values()) == [1]


def test_set_reminder_params_want_exactly_one_time():
    assert "exactly one" in _error_fields("set_reminder", {"text": "x"})["params"]
    assert (
        "exactly one"
        in _error_fields("set_reminder", {"text": "x", "in_hours": 1, "remind_at": "2031-01-01T00:00:00Z"})["params"]
    )
    assert "remind_at" in _error_fields("set_reminder", {"text": "x", "remind_at": "2031-01-01T00:00:00"})
    assert "in_hours" in _error_fields("set_reminder", {"text": "x", "in_hours": -1})
    assert "text" in _error_fields("set_reminder", {"text": "", "in_hours": 1})
    assert "recipient" in _error_fields("set_reminder", {"text": "x", "in_hours": 1, "recipient": "nobody"})


# --- Races ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_workers_executing_one_reply_at_once_send_it_once(smtp_server, make_action, customer_email):
    action = make_action("send_reply", email=customer_email, params={"body": "Done."})

    def execute(ready):
        ready()
        return _execute(action)

    outcomes = run_at_once(execute, execute)

    # The loser finds the message sent, or mid-send (and retries later): never a second copy.
    assert all(not isinstance(o, Exception) or (isinstance(o, IntegrationError) and not o.permanent) for o in outcomes)
    assert any(not isinstance(o, Exception) for o in outcomes), outcomes
    assert smtp_server.message_id_counts() == {outbox.message_id_for(action.pk, "reply"): 1}


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_at_once_send_each_reminder_once(smtp_server, make_action, customer_email):
    actions = [_reminder_action(make_action, customer_email, in_hours=1) for _ in range(10)]
    for action in actions:
        _execute(action)
    now = timezone.now() + timedelta(hours=2)

    def sweep(ready):
        ready()
        return send_due_reminders(now)

    counts = run_at_once(sweep, sweep)

    assert sum(counts) == 10, counts
    assert len(smtp_server.message_id_counts()) == 10
    assert set(smtp_server.message_id_counts().values()) == {1}


@pytest.mark.django_db(transaction=True)
def test_undo_racing_the_sweeper_either_cancels_or_is_refused_never_both(smtp_server, make_action, customer_email):
    actions = [_reminder_action(make_action, customer_email, in_hours=1) for _ in range(10)]
    outcomes = {action.pk: _execute(action) for action in actions}
    now = timezone.now() + timedelta(hours=2)

    def undo_all(ready):
        ready()
        refused = 0
        for action in actions:
            try:
                _undo(action, outcomes[action.pk])
            except UndoRefused:
                refused += 1
        return refused

    def sweep(ready):
        ready()
        return send_due_reminders(now)

    refused, sent = run_at_once(undo_all, sweep)

    assert refused == sent == len(smtp_server.received)
    statuses = [LocalReminder.objects.get(action=action).status for action in actions]
    assert statuses.count(ReminderStatus.SENT) == sent
    assert statuses.count(ReminderStatus.CANCELLED) == 10 - sent
