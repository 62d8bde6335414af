"""IMAP intake that cannot poll (bad password, server down, not configured), its health and its schedule."""

from __future__ import annotations

import logging

import pytest
from django_q.models import Schedule

from actions.management.commands.ingest_imap import Command
from config.schedules import IMAP_SCHEDULE, register_schedules
from integrations.errors import IntegrationError
from integrations.imap import health, poll_configured_mailbox, poll_mailbox
from integrations.models import MailboxCursor
from tests.test_imap import MAILBOX, cursor, message, poll_failing, stored_ids

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _intake(settings):
    settings.PROCESS_ON_INTAKE = False


# --- Cannot poll at all ---


def test_a_wrong_password_exits_2_without_showing_the_password(dovecot, settings, caplog):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "Tr0ub4dor&3-not-this-one"
    caplog.set_level(logging.DEBUG)

    error, out, err = poll_failing(2)

    assert f"refused the login of '{dovecot.user}'" in str(error)
    assert "Authentication failed" in str(error)
    assert cursor().last_error.endswith(str(error))
    for text in (str(error), out, err, caplog.text, cursor().last_error):
        assert "Tr0ub4dor" not in text


def test_a_wrong_password_is_a_permanent_error(dovecot, settings):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "wrong"

    with pytest.raises(IntegrationError) as caught:
        poll_mailbox()

    assert caught.value.permanent


def test_a_server_that_is_down_is_a_transient_error(settings, unused_port):
    settings.IMAP_HOST, settings.IMAP_PORT, settings.IMAP_SSL = "127.0.0.1", unused_port, False
    settings.IMAP_MAILBOX = MAILBOX

    with pytest.raises(IntegrationError) as caught:
        poll_mailbox()

    assert not caught.value.permanent
    assert f"Cannot connect to IMAP server 127.0.0.1:{unused_port}: Connection refused" in str(caught.value)
    assert "Connection refused" in cursor().last_error


def test_a_failed_poll_is_cleared_by_the_next_good_one(dovecot, settings):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "wrong"
    with pytest.raises(IntegrationError):
        poll_mailbox()
    assert cursor().last_error

    dovecot.settings(settings)
    poll_mailbox()

    assert cursor().last_error == ""


def test_it_exits_2_when_imap_is_not_configured(settings):
    settings.IMAP_HOST = ""

    error, _, _ = poll_failing(2)

    assert "IMAP_HOST is not set" in str(error)


def test_the_help_says_mail_is_never_deleted_or_marked_read():
    text = " ".join(Command().create_parser("manage.py", "ingest_imap").format_help().split())

    assert "mail is never deleted, moved or marked read" in text
    assert "Exit codes: 0 all stored; 1 some messages or folders failed" in text


# --- Health and the schedule ---


def test_health_is_empty_when_imap_is_off_or_works(dovecot, settings):
    settings.IMAP_HOST = ""
    assert health() == ""
    dovecot.settings(settings)
    assert health() == ""


def test_health_says_why_imap_does_not_work(dovecot, settings):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "wrong"

    assert "refused the login" in health()


def test_the_schedule_exists_only_while_imap_is_configured(settings):
    settings.IMAP_HOST = ""
    register_schedules()
    assert not Schedule.objects.filter(name=IMAP_SCHEDULE).exists()

    settings.IMAP_HOST, settings.IMAP_POLL_MINUTES = "imap.acme.example", 3
    register_schedules()
    schedule = Schedule.objects.get(name=IMAP_SCHEDULE)
    assert (schedule.func, schedule.minutes) == ("integrations.imap.poll_configured_mailbox", 3)

    settings.IMAP_HOST = ""
    register_schedules()
    assert not Schedule.objects.filter(name=IMAP_SCHEDULE).exists()


def test_the_scheduled_job_does_nothing_without_imap(settings):
    settings.IMAP_HOST = ""

    assert poll_configured_mailbox() == "IMAP is off: IMAP_HOST is not set."
    assert not MailboxCursor.objects.exists()


def test_the_scheduled_job_polls_the_mailbox(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))

    assert poll_configured_mailbox() == "INBOX: 1 new on the server, 1 stored"
    assert stored_ids() == ["<order-1@customer.example>"]


def test_the_scheduled_job_records_a_failed_poll(dovecot, settings):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "wrong"

    assert poll_configured_mailbox().startswith("IMAP poll failed: IMAP server 127.0.0.1")
    assert "refused the login" in cursor().last_error
