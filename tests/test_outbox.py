"""The outbox: one row per Message-ID, one delivery per row, and what a mail server's answers do to it."""

from __future__ import annotations

import re
import smtplib
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations import outbox
from integrations.errors import IntegrationError
from integrations.models import OutboxMessage, OutboxStatus
from tests.test_mail_out import MESSAGE_ID, store

# The smtp_server fixture: a real SMTP server on the loopback interface.
pytestmark = pytest.mark.django_db


def _age(message: OutboxMessage, seconds: int) -> None:
    """Make the message look like a worker started sending it `seconds` ago and died."""
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=OutboxStatus.SENDING, sending_started_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_storing_a_message_twice_keeps_one_row():
    first = store()
    second = store(subject="A different subject, same Message-ID")

    assert second.pk == first.pk
    assert OutboxMessage.objects.count() == 1
    assert second.subject == "Your refund"


def test_it_delivers_with_its_message_id_and_marks_it_sent(smtp_server):
    message = store(headers={"In-Reply-To": "<order@customer.example>"})

    assert outbox.deliver(message) is True

    received = smtp_server.only(MESSAGE_ID)
    assert received.rcpt_tos == ("dana@customer.example",)
    assert received.message["Subject"] == "Your refund"
    assert received.message["In-Reply-To"] == "<order@customer.example>"
    assert received.message["Auto-Submitted"] == "auto-generated"
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == (OutboxStatus.SENT, 1, "")
    assert message.sent_at is not None


def test_delivering_twice_sends_once(smtp_server):
    message = store()

    assert outbox.deliver(message) is True
    assert outbox.deliver(message) is False
    assert outbox.deliver(store()) is False

    assert smtp_server.message_id_counts() == {MESSAGE_ID: 1}


def test_it_puts_a_message_back_to_pending_on_451(smtp_server):
    smtp_server.refuse_next(451)
    message = store()

    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)

    assert caught.value.permanent is False
    message.refresh_from_db()
    assert message.status == OutboxStatus.PENDING
    assert "451" in message.last_error
    assert smtp_server.received == []
    # The next try goes through.
    assert outbox.deliver(message) is True
    assert smtp_server.message_id_counts() == {MESSAGE_ID: 1}


def test_it_fails_a_message_for_good_on_550(smtp_server):
    smtp_server.refuse_next(550)
    message = store()

    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)

    assert caught.value.permanent is True
    message.refresh_from_db()
    assert message.status == OutboxStatus.FAILED
    assert outbox.deliver(message) is False
    assert smtp_server.received == []


@pytest.mark.parametrize(("code", "permanent", "status"), [(550, True, "failed"), (450, False, "pending")])
def test_it_tells_refused_recipients_apart_by_code(smtp_server, code, permanent, status):
    smtp_server.refuse_next(code, stage="rcpt")
    message = store()

    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)

    assert caught.value.permanent is permanent
    message.refresh_from_db()
    assert message.status == status
    assert "Recipients refused" in message.last_error


def test_it_treats_an_unreachable_server_as_transient(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # discard: nobody listens
    message = store()

    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)

    assert caught.value.permanent is False
    message.refresh_from_db()
    assert message.status == OutboxStatus.PENDING


def test_it_keeps_a_message_sent_when_the_server_fails_after_accepting_it(smtp_server, monkeypatch):
    def quit_badly(self):
        raise smtplib.SMTPResponseException(421, b"Going away")

    monkeypatch.setattr(smtplib.SMTP, "quit", quit_badly)
    message = store()

    assert outbox.deliver(message) is True

    message.refresh_from_db()
    assert message.status == OutboxStatus.SENT
    assert smtp_server.message_id_counts() == {MESSAGE_ID: 1}


def test_it_fails_a_message_that_cannot_be_built_instead_of_leaving_it_sending(smtp_server):
    message = OutboxMessage.objects.create(
        message_id=MESSAGE_ID,
        from_email="mailroom@acme.example",
        to=["dana@customer.example"],
        attachments=[{"filename": "a.pdf", "content_type": "application/pdf", "content": "not base64!"}],
    )

    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)

    assert caught.value.permanent is True
    message.refresh_from_db()
    assert message.status == OutboxStatus.FAILED
    assert message.last_error.startswith("Cannot build the message")
    assert smtp_server.received == []


def test_it_writes_an_attachments_content_type_parameters_once(smtp_server):
    ics = b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"
    message = store(attachments=[outbox.attachment("invite.ics", "text/calendar; method=REQUEST; charset=UTF-8", ics)])

    outbox.deliver(message)

    received = smtp_server.only(MESSAGE_ID)
    part = received.part("text/calendar")
    assert part.get_param("method") == "REQUEST"
    raw_type = re.search(rb"Content-Type: text/calendar;.*?\r\n(?=\S)", received.raw, re.DOTALL)
    assert raw_type is not None
    assert raw_type.group().lower().count(b"charset") == 1
    assert part.get_filename() == "invite.ics"
    assert part.get_content().replace("\r\n", "\n") == ics.decode().replace("\r\n", "\n")


def test_cancel_stops_a_pending_message(smtp_server):
    message = store()

    assert outbox.cancel(message) is True

    assert outbox.deliver(message) is False
    message.refresh_from_db()
    assert message.status == OutboxStatus.CANCELLED
    assert smtp_server.received == []


def test_cancel_cannot_stop_a_sent_message(smtp_server):
    message = store()
    outbox.deliver(message)

    assert outbox.cancel(message) is False

    message.refresh_from_db()
    assert message.status == OutboxStatus.SENT


def test_recovery_resends_a_stuck_send_with_the_same_message_id(smtp_server, settings):
    settings.OUTBOX_STUCK_SENDS = "resend"
    message = store()
    outbox.deliver(message)
    # The worker died after the server took the message but before it marked the row sent.
    _age(message, 600)

    assert outbox.recover_stuck_sends(300) == {"resent": 1}
    assert outbox.deliver(message) is True

    # One message, repeated once: receiving clients drop the repeat by its Message-ID.
    assert smtp_server.message_id_counts() == {MESSAGE_ID: 2}
    message.refresh_from_db()
    assert message.status == OutboxStatus.SENT


def test_recovery_holds_a_stuck_send_for_a_person(smtp_server, settings):
    settings.OUTBOX_STUCK_SENDS = "hold"
    message = store()
    _age(message, 600)

    assert outbox.recover_stuck_sends(300) == {"held": 1}

    assert outbox.deliver(message) is False
    message.refresh_from_db()
    assert message.status == OutboxStatus.HELD
    assert "Held" in message.last_error
    assert smtp_server.received == []


def test_recovery_leaves_a_send_that_is_still_in_progress(settings):
    settings.OUTBOX_STUCK_SENDS = "resend"
    message = store()
    _age(message, 10)

    assert outbox.recover_stuck_sends(300) == {"resent": 0}

    message.refresh_from_db()
    assert message.status == OutboxStatus.SENDING


def test_it_refuses_a_message_without_recipients():
    with pytest.raises(ValueError, match="recipient"):
        store(to=[])
