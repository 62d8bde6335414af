"""Recognising automated mail (RFC 3834): our own, bounces, auto-replies, lists; and mail a person wrote."""

from __future__ import annotations

import pytest

from actions.intake.automated import detect_automated
from actions.intake.parsing import parse_message
from integrations import outbox
from tests.test_parsing import parse_corpus

CUSTOMER = "From: Dana Fischer <dana@customer.example>"


@pytest.fixture(autouse=True)
def _mailroom_addresses(settings):
    settings.DEFAULT_FROM_EMAIL = "Mailroom <mailroom@acme.example>"
    settings.MESSAGE_ID_DOMAIN = "acme.example"


def _kind(*headers: str, body: str = "Hello.") -> str:
    """The kind detected for a crafted message with these header lines."""
    raw = "\r\n".join([*headers, "", body]).encode()
    return detect_automated(parse_message(raw))[0]


# --- The corpus -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "sisimai-set-of-emails/rfc3834-01.eml",  # Auto-Submitted: auto-replied
        "sisimai-set-of-emails/rfc3834-02.eml",  # Exchange "Automatic reply:", null sender
        "sisimai-set-of-emails/rfc3834-03.eml",  # Apple "Auto reply:", no header at all
        "sisimai-set-of-emails/rfc3834-06.eml",  # Auto-Submitted and Precedence: bulk
        "flanker/disposition-notification.eml",  # a read receipt
    ],
)
def test_it_recognises_auto_replies_in_the_corpus(relative):
    kind, reason = detect_automated(parse_corpus(relative))

    assert kind == "auto_reply"
    assert reason


@pytest.mark.parametrize(
    "relative",
    [
        "sisimai-set-of-emails/lhost-amazonworkmail-01.eml",
        "sisimai-set-of-emails/lhost-exchange2007-01.eml",
        "sisimai-set-of-emails/lhost-exim-01.eml",
        "sisimai-set-of-emails/lhost-postfix-01.eml",
        "sisimai-set-of-emails/lhost-qmail-01.eml",
        "cpython/msg_16.txt",  # a bounce relayed by a mailing list: the bounce is what matters
    ],
)
def test_it_recognises_bounces_in_the_corpus(relative):
    kind, reason = detect_automated(parse_corpus(relative))

    assert kind == "bounce"
    assert reason


def test_it_says_why_a_message_is_a_bounce():
    postfix = detect_automated(parse_corpus("sisimai-set-of-emails/lhost-postfix-01.eml"))
    qmail = detect_automated(parse_corpus("sisimai-set-of-emails/lhost-qmail-01.eml"))
    exim = detect_automated(parse_corpus("sisimai-set-of-emails/lhost-exim-01.eml"))

    assert postfix == ("bounce", "It is a delivery status report (multipart/report; report-type=delivery-status)")
    assert qmail == (
        "bounce",
        "It comes from MAILER-DAEMON@mx4.example.jp with the delivery failure subject 'failure notice'",
    )
    # Exim's bounces say Auto-Submitted: auto-replied too; being a bounce comes first.
    assert exim == (
        "bounce",
        "It names recipients a delivery failed for (X-Failed-Recipients: 'kijitora@example.ed.jp')",
    )


def test_a_forwarded_message_is_not_a_bounce():
    assert detect_automated(parse_corpus("sisimai-set-of-emails/is-not-bounce-02.eml")) == ("", "")


def test_it_recognises_mailing_lists_in_the_corpus():
    kind, reason = detect_automated(parse_corpus("mail-parser/mail_test_13"))

    assert kind == "list"
    assert reason.startswith("It came through the mailing list '3f21937f0f636c8cec1db30bfmc list <")


def test_ordinary_corpus_mail_is_not_automated():
    for relative in [
        "django-helpdesk/quoted_printable.eml",
        "django-mailbox/message_with_rfc822_attachment.eml",
        "mikel-mail/japanese_shift_jis.eml",
        "flanker/enclosed-broken.eml",
    ]:
        assert detect_automated(parse_corpus(relative)) == ("", ""), relative


# --- Crafted messages ------------------------------------------------------------------------


def test_a_normal_customer_mail_is_not_automated():
    raw = f"{CUSTOMER}\r\nTo: support@acme.example\r\nSubject: Where is my order?\r\n\r\nHi, it is late.\r\n"

    assert detect_automated(parse_message(raw.encode())) == ("", "")


def test_auto_submitted_other_than_no_is_an_auto_reply():
    assert _kind(CUSTOMER, "Auto-Submitted: auto-replied") == "auto_reply"
    assert _kind(CUSTOMER, "Auto-Submitted: auto-generated; owner-email=x@y.example") == "auto_reply"
    assert _kind(CUSTOMER, "Auto-Submitted: no") == ""


@pytest.mark.parametrize(
    "header", ["X-Autoreply: yes", "X-Autorespond: Vacation", "X-Autoresponder: on", "Precedence: auto_reply"]
)
def test_auto_responder_headers_are_auto_replies(header):
    assert _kind(CUSTOMER, header) == "auto_reply"


def test_subjects_count_alone_only_with_an_unmistakable_prefix():
    assert _kind(CUSTOMER, "Subject: Automatic reply: Your order") == "auto_reply"
    assert _kind(CUSTOMER, "Subject: Out of Office: back Monday") == "auto_reply"
    assert _kind(CUSTOMER, "Subject: Abwesenheitsnotiz: Bestellung") == "auto_reply"
    assert _kind(CUSTOMER, "Subject: Auto: Re: invoice") == "auto_reply"
    # People write these words too.
    assert _kind(CUSTOMER, "Subject: Our out of office schedule for Christmas") == ""
    assert _kind(CUSTOMER, "Subject: Re: Automatic reply settings") == ""


def test_an_auto_reply_subject_counts_with_a_backing_signal():
    assert _kind(CUSTOMER, "Subject: I am out of the office", "X-Auto-Response-Suppress: All") == "auto_reply"
    assert _kind(CUSTOMER, "Subject: Vacation notice", "Return-Path: <>") == "auto_reply"


def test_x_auto_response_suppress_alone_is_not_enough():
    assert _kind(CUSTOMER, "Subject: Meeting notes", "X-Auto-Response-Suppress: All") == ""


def test_delivery_reports_and_daemons_are_bounces():
    report = 'Content-Type: multipart/report; report-type="delivery-status"; boundary="b"'
    body = "--b\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n--b--\r\n"
    assert _kind(CUSTOMER, report, body=body) == "bounce"
    assert _kind(CUSTOMER, "X-Failed-Recipients: bob@acme.example") == "bounce"
    assert _kind("From: MAILER-DAEMON@mx.customer.example", "Subject: Undelivered Mail Returned to Sender") == "bounce"
    assert _kind("From: postmaster@customer.example", "Subject: Delivery Status Notification (Failure)") == "bounce"
    # A postmaster writing about something else is a person.
    assert _kind("From: postmaster@customer.example", "Subject: New server next week") == ""


def test_the_null_sender_is_a_bounce_unless_it_says_it_is_an_auto_reply():
    assert detect_automated(parse_message(f"{CUSTOMER}\r\nReturn-Path: <>\r\n\r\nx".encode())) == (
        "bounce",
        "It comes from the null sender (Return-Path: <>), which delivery reports use",
    )
    assert _kind(CUSTOMER, "Return-Path: <>", "Auto-Submitted: auto-replied") == "auto_reply"


@pytest.mark.parametrize(
    "header",
    [
        "List-Id: Announcements <announce.lists.customer.example>",
        "List-Unsubscribe: <https://customer.example/unsubscribe>",
        "Mailing-List: list announce@customer.example",
        "Precedence: bulk",
        "Precedence: list",
        "Precedence: junk",
    ],
)
def test_list_headers_mean_a_mailing_list(header):
    assert _kind(CUSTOMER, header) == "list"


def test_our_own_message_coming_back_is_ours():
    message_id = outbox.message_id_for(42, "reply")

    kind, reason = detect_automated(parse_message(f"{CUSTOMER}\r\nMessage-ID: {message_id}\r\n\r\nx".encode()))

    assert (kind, reason) == ("own", "Mailroom sent it: its Message-ID is the one written for action 42")


def test_a_forged_mailroom_message_id_is_not_ours():
    forged = "<mailroom.42.reply.0123456789abcdef@acme.example>"

    assert _kind(CUSTOMER, f"Message-ID: {forged}") == ""


def test_mail_from_our_address_with_an_id_in_our_domain_is_ours():
    assert _kind("From: mailroom@acme.example", "Message-ID: <notice.7@acme.example>") == "own"
    assert _kind("From: mailroom@acme.example", "Message-ID: <notice.7@elsewhere.example>") == ""


def test_our_own_mail_comes_before_every_other_kind():
    message_id = outbox.message_id_for(7, "escalation")

    assert _kind(CUSTOMER, f"Message-ID: {message_id}", "Auto-Submitted: auto-generated", "Return-Path: <>") == "own"


def test_a_bounce_comes_before_list_and_auto_reply_headers():
    headers = ["From: MAILER-DAEMON@mx.example", "Subject: Returned mail", "Auto-Submitted: auto-replied"]

    assert _kind(*headers, "List-Id: <x.example>") == "bounce"
