"""Mail out as the peer sees it: a real SMTP server on loopback (aiosmtpd, with STARTTLS and AUTH).

What arrives is parsed back (email.parser, policy=default) and checked header
by header. test_mail_providers.py does the same for the web APIs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar

from integrations import calendar, outbox
from integrations.errors import IntegrationError
from integrations.mail import MailBackend, mail_backend, provider_name
from integrations.models import OutboxMessage, OutboxStatus
from tests.smtp import SMTP_PASSWORD, SMTP_USER, Login
from tests.test_settings import settings_of

pytestmark = pytest.mark.django_db

MESSAGE_ID = "<mailroom.7.reply.0123456789abcdef@mail.acme.example>"
THREAD = {
    "In-Reply-To": "<order-1234@customer.example>",
    "References": "<root@customer.example> <order-1234@customer.example>",
}


@pytest.fixture(autouse=True)
def mail_settings(settings):
    """A sender with a display name, and Message-IDs on a domain that is not this host's name."""
    settings.DEFAULT_FROM_EMAIL = "Acme Support <support@acme.example>"
    settings.MESSAGE_ID_DOMAIN = "mail.acme.example"


def store(**fields) -> OutboxMessage:
    values = {
        "message_id": MESSAGE_ID,
        "to": ["Dana Customer <dana@customer.example>"],
        "subject": "Your refund",
        "text_body": "It is on its way.\n",
        **fields,
    }
    return outbox.store_message(**values)


def deliver_refused(message: OutboxMessage) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        outbox.deliver(message)
    message.refresh_from_db()
    return caught.value


# --- Choosing the provider ------------------------------------------------------------------


def test_the_provider_setting_chooses_the_backend_and_reads_its_key_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("server-token\n")
    chosen = "[settings.EMAIL_PROVIDER, settings.EMAIL_BACKEND, settings.ANYMAIL.get('POSTMARK_SERVER_TOKEN')]"

    assert settings_of(tmp_path, chosen, DEBUG="true") == [
        "console",
        "django.core.mail.backends.console.EmailBackend",
        None,
    ]
    assert settings_of(tmp_path, chosen, DEBUG="true", EMAIL_HOST="smtp.acme.example")[:2] == [
        "smtp",
        "django.core.mail.backends.smtp.EmailBackend",
    ]
    assert settings_of(
        tmp_path, chosen, DEBUG="true", EMAIL_PROVIDER="postmark", POSTMARK_SERVER_TOKEN_FILE=str(token_file)
    ) == ["postmark", "anymail.backends.postmark.EmailBackend", "server-token"]
    # An explicit class path still wins over the provider's.
    overridden = settings_of(
        tmp_path, chosen, DEBUG="true", EMAIL_PROVIDER="sendgrid", EMAIL_BACKEND="myproject.mail.Backend"
    )
    assert overridden[1] == "myproject.mail.Backend"


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("django.core.mail.backends.smtp.EmailBackend", "smtp"),
        ("anymail.backends.amazon_ses.EmailBackend", "amazon_ses"),
        ("anymail.backends.postmark.EmailBackend", "postmark"),
        ("integrations.apple.AppleMailBackend", "apple"),
    ],
)
def test_the_mail_backend_is_named_after_its_provider(path, name):
    assert provider_name(path) == name
    assert MailBackend(path).capability == "mail"


# --- What arrives at the SMTP server --------------------------------------------------------


def test_a_reply_arrives_with_the_headers_mail_clients_thread_and_trust(smtp_server):
    message = store(headers={**THREAD, "Auto-Submitted": "auto-replied"}, html_body="<p>It is on its way.</p>")

    assert outbox.deliver(message) is True

    received = smtp_server.only(MESSAGE_ID)
    headers = received.message
    assert headers.get_all("Message-ID") == [MESSAGE_ID]
    assert headers["Message-ID"].split("@")[1] == "mail.acme.example>"
    # "-0000": UTC, the sender's own zone not given (RFC 5322 3.3).
    assert abs(headers["Date"].datetime.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert headers["From"] == "Acme Support <support@acme.example>"
    assert headers["To"] == "Dana Customer <dana@customer.example>"
    assert headers["Subject"] == "Your refund"
    assert headers["In-Reply-To"] == "<order-1234@customer.example>"
    assert headers["References"].split() == ["<root@customer.example>", "<order-1234@customer.example>"]
    assert headers["Auto-Submitted"] == "auto-replied"
    assert headers.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in headers.iter_parts()] == ["text/plain", "text/html"]
    assert received.mail_from == "support@acme.example"
    assert received.rcpt_tos == ("dana@customer.example",)


def test_an_automatic_message_says_it_was_generated(smtp_server):
    outbox.deliver(store())

    assert smtp_server.only(MESSAGE_ID).message["Auto-Submitted"] == "auto-generated"


def test_attachments_arrive_byte_for_byte_under_their_names(smtp_server):
    files = {
        "invoice.pdf": ("application/pdf", b"%PDF-1.7\n\x00\xff\xfe binary \r\n\x1b"),
        "Rechnung März (2031) é.pdf": ("application/pdf", bytes(range(256))),
        "notes.txt": ("text/plain", "Zoë's notes\r\nline two\r\n".encode()),
        "報告.csv": ("text/csv", b"a,b\r\n1,2\r\n"),
    }
    attachments = [outbox.attachment(name, kind, content) for name, (kind, content) in files.items()]

    outbox.deliver(store(attachments=attachments))

    received = smtp_server.only(MESSAGE_ID)
    arrived = {part.get_filename(): part for part in received.message.iter_attachments()}
    assert sorted(arrived) == sorted(files)
    for name, (kind, content) in files.items():
        assert arrived[name].get_content_type() == kind
        assert arrived[name].get_payload(decode=True) == content, name


def invitation() -> bytes:
    start = datetime(2031, 3, 4, 10, 0, tzinfo=UTC)
    meeting = calendar.Meeting(
        uid="mailroom-7-event@mail.acme.example",
        title="Refund review",
        start=start,
        end=start + timedelta(minutes=45),
        organizer="support@acme.example",
        attendees=("dana@customer.example",),
    )
    return calendar.invitation(meeting)


def test_a_meeting_invitation_is_a_calendar_part_mail_clients_offer_to_accept(smtp_server):
    ics = invitation()
    invite = outbox.attachment(calendar.FILENAME, calendar.REQUEST_CONTENT_TYPE, ics)

    outbox.deliver(store(subject="Invitation: Refund review", attachments=[invite]))

    received = smtp_server.only(MESSAGE_ID).message
    assert received.get_content_type() == "multipart/mixed"
    body, file = received.iter_parts()
    # Outlook answers only a text/calendar part inside multipart/alternative; others read the file.
    assert body.get_content_type() == "multipart/alternative"
    text, inline = body.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert inline.get_content_type() == "text/calendar"
    assert inline.get_param("method") == "REQUEST"
    assert inline.get_content_disposition() is None
    assert Calendar.from_ical(inline.get_content())["METHOD"] == "REQUEST"
    assert inline.get_content().replace("\r\n", "\n") == ics.decode().replace("\r\n", "\n")
    assert (file.get_content_type(), file.get_filename()) == ("application/ics", "invite.ics")
    assert file.get_payload(decode=True) == ics


# --- Header injection -----------------------------------------------------------------------

BCC = "\r\nBcc: evil@attacker.example"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"subject": f"Invoice{BCC}"}, "Line break in the subject"),
        ({"subject": "Invoice\u2028Bcc: evil@attacker.example"}, "Line break in the subject"),
        ({"to": [f'"Dana{BCC}" <dana@customer.example>']}, "Line break in the recipient"),
        ({"cc": [f"Evil{BCC} <copy@customer.example>"]}, "Line break in the recipient"),
        ({"from_email": f"Acme{BCC} <support@acme.example>"}, "Line break in the sender"),
        ({"attachments": [outbox.attachment(f"a.pdf{BCC}", "application/pdf", b"%PDF")]}, "attachment name"),
        ({"attachments": [outbox.attachment("a.pdf", f"application/pdf{BCC}", b"%PDF")]}, "attachment type"),
        ({"headers": {"In-Reply-To": f"<a@b>{BCC}"}}, "Line break in the In-Reply-To"),
        ({"headers": {"X-Note\r\nX-Injected": "yes"}}, "Not a header name"),
        ({"headers": {"Bcc": "evil@attacker.example"}}, "comes from the message's own fields"),
    ],
    ids=["subject", "unicode line break", "to name", "cc name", "from name", "file name", "file type", "header",
         "header name", "bcc header"],
)  # fmt: skip
def test_a_line_break_in_any_header_field_fails_the_message_before_anything_is_sent(smtp_server, fields, reason):
    message = store(**fields)

    error = deliver_refused(message)

    assert error.permanent is True
    assert reason in str(error)
    assert smtp_server.received == []
    assert (message.status, message.attempts) == (OutboxStatus.FAILED, 1)
    assert message.last_error.startswith("Cannot build the message") and reason in message.last_error


def test_a_name_with_quotes_and_commas_stays_one_recipient(smtp_server):
    # Not an injection: quoted display names may hold anything but line breaks.
    outbox.deliver(store(to=['"Customer, Dana <boss@attacker.example>" <dana@customer.example>']))

    received = smtp_server.only(MESSAGE_ID)
    assert received.rcpt_tos == ("dana@customer.example",)
    assert [address.addr_spec for address in received.message["To"].addresses] == ["dana@customer.example"]
    assert "Bcc" not in received.message and "X-Injected" not in received.message


# --- SMTP with STARTTLS and AUTH ------------------------------------------------------------


def test_it_logs_in_over_starttls_with_the_configured_credentials(smtp_tls_server):
    assert outbox.deliver(store()) is True

    received = smtp_tls_server.only(MESSAGE_ID)
    assert (received.tls, received.login) == (True, SMTP_USER)
    assert smtp_tls_server.logins == [Login(SMTP_USER, password_ok=True, tls=True)]


def test_a_wrong_password_fails_the_message_for_good(smtp_tls_server, settings):
    settings.EMAIL_HOST_PASSWORD = "wrong password"
    message = store()

    error = deliver_refused(message)

    assert error.permanent is True
    assert "535" in str(error)
    assert "wrong password" not in message.last_error and SMTP_PASSWORD not in message.last_error
    assert message.status == OutboxStatus.FAILED
    assert smtp_tls_server.received == []
    # smtplib tries each mechanism the server offers (PLAIN, then LOGIN): every try was refused, over TLS.
    assert set(smtp_tls_server.logins) == {Login(SMTP_USER, password_ok=False, tls=True)}


def test_a_server_closing_with_421_is_tried_again_later(smtp_server):
    smtp_server.refuse_next(421)
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, message.status) == (False, OutboxStatus.PENDING)
    assert "421" in message.last_error
    assert outbox.deliver(message) is True


def test_smtp_health_logs_in_over_tls_and_sends_nothing(smtp_tls_server):
    health = mail_backend().health()

    assert health.ok, health.detail
    assert (health.backend, "TLS" in health.detail, "logged in" in health.detail) == ("smtp", True, True)
    assert smtp_tls_server.logins == [Login(SMTP_USER, password_ok=True, tls=True)]
    assert smtp_tls_server.received == []


def test_smtp_health_reports_a_refused_login_without_the_password(smtp_tls_server, settings):
    settings.EMAIL_HOST_PASSWORD = "wrong password"

    health = mail_backend().health()

    assert not health.ok
    assert "535" in health.detail and "wrong password" not in health.detail


def test_smtp_health_reports_a_server_that_is_not_there(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # discard: nobody listens

    health = mail_backend().health()

    assert not health.ok
    assert "Could not reach the mail server" in health.detail


def test_console_health_has_nothing_to_check(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

    health = mail_backend().health()

    assert (health.ok, health.backend) == (True, "console")
