"""IMAP intake against a real Dovecot: new mail stored once, the mailbox left as it was, failures that block nothing."""

from __future__ import annotations

import io
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError
from imapclient.exceptions import IMAPClientError

import integrations.imap.poll
from actions.models import Email, EmailStatus
from integrations.errors import IntegrationError
from integrations.imap import ImapSettings, connect, poll_folder, poll_mailbox
from integrations.models import MailboxCursor
from tests.test_parsing import corpus_file

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MAILBOX = "support@acme.example"


@pytest.fixture(autouse=True)
def _intake(settings):
    # Storing is what is tested here; the processing runs have suites of their own.
    settings.PROCESS_ON_INTAKE = False


def message(n: int, *, message_id: str | None = None, size: int = 0) -> bytes:
    """A customer's question, as a mail client would send it (CRLF line ends)."""
    msg = EmailMessage()
    msg["From"] = f"Customer {n} <customer{n}@customer.example>"
    msg["To"] = MAILBOX
    msg["Subject"] = f"Order {n} has not arrived"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id or f"<order-{n}@customer.example>"
    body = f"Hello,\n\nI ordered item {n} two weeks ago and it has not arrived. Could you check?\n\nThanks\n"
    msg.set_content(body + "x" * size)
    return msg.as_bytes(policy=SMTP)


def stored_ids() -> list[str]:
    return list(Email.objects.order_by("id").values_list("message_id", flat=True))


def poll(**options) -> tuple[str, str]:
    """Run `manage.py ingest_imap`; its stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest_imap", stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def poll_failing(returncode: int, **options) -> tuple[CommandError, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("ingest_imap", stdout=out, stderr=err, **options)
    assert caught.value.returncode == returncode, caught.value
    return caught.value, out.getvalue(), err.getvalue()


def cursor(folder: str = "INBOX") -> MailboxCursor:
    return MailboxCursor.objects.get(mailbox=MAILBOX, folder=folder)


# --- Storing new mail once ---


def test_it_stores_new_messages_once(dovecot, settings):
    dovecot.settings(settings)
    for n in (1, 2, 3):
        dovecot.append("INBOX", message(n))

    first = poll_mailbox()["INBOX"]
    second = poll_mailbox()["INBOX"]

    assert (first.found, first.fetched, first.created, first.errors) == (3, 3, 3, [])
    # The server answers "4:*" with UID 3, the highest it has: still nothing new.
    assert (second.found, second.fetched, second.created) == (0, 0, 0)
    assert stored_ids() == ["<order-1@customer.example>", "<order-2@customer.example>", "<order-3@customer.example>"]
    assert set(Email.objects.values_list("mailbox", "source")) == {(MAILBOX, "imap")}
    assert (cursor().last_uid, cursor().last_error) == (3, "")
    assert cursor().last_polled_at is not None


def test_each_stored_email_remembers_where_its_message_sits(dovecot, settings):
    dovecot.settings(settings, folders=["INBOX", "Billing"])
    first = dovecot.append("INBOX", message(1))
    second = dovecot.append("Billing", message(2))
    dovecot.append("Billing", message(1))  # the same message again: it keeps its first place

    poll_mailbox()

    places = dict(Email.objects.values_list("message_id", "imap_folder"))
    assert places == {"<order-1@customer.example>": "INBOX", "<order-2@customer.example>": "Billing"}
    one, two = (Email.objects.get(message_id=f"<order-{n}@customer.example>") for n in (1, 2))
    assert (one.imap_uid, one.imap_uidvalidity) == (first, dovecot.uidvalidity("INBOX"))
    assert (two.imap_uid, two.imap_uidvalidity) == (second, dovecot.uidvalidity("Billing"))


def test_it_stores_real_world_messages(dovecot, settings):
    dovecot.settings(settings)
    for name in ("django-helpdesk/quoted_printable.eml", "django-mailbox/message_with_rfc822_attachment.eml"):
        dovecot.append("INBOX", corpus_file(name).read_bytes())

    result = poll_mailbox()["INBOX"]

    assert (result.created, result.errors) == (2, [])
    assert set(stored_ids()) == {
        "<CACf_UpPA7=DRF4NLFf4WpOVwHsRMtfNEwy1DHLjfh09DjuKZFA@mail.gmail.com>",
        "<ce1f843c1a2d4de7a0c7c78c84a50f8d@adamcoddington.net>",
    }


def test_it_never_marks_mail_read_or_deletes_it(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", message(2), flags=(b"\\Flagged",))
    before = dovecot.flags()

    poll()
    poll()

    after = dovecot.flags()
    assert after == before
    assert len(after) == 2
    assert not any(b"\\Seen" in flags for flags in after.values())


def test_a_restart_does_not_store_again(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", message(2))
    poll()

    # A new process: a new connection, and the cursor read back from the database.
    new_uid = dovecot.append("INBOX", message(3))
    out, _ = poll()

    assert "INBOX: 1 new on the server, 1 stored." in out
    assert Email.objects.count() == 3
    assert cursor().last_uid == new_uid


def test_it_fetches_in_batches_in_uid_order(dovecot, settings, monkeypatch):
    dovecot.settings(settings)
    settings.IMAP_BATCH_SIZE = 2
    uids = [dovecot.append("INBOX", message(n)) for n in range(1, 6)]
    seen = []

    result = poll_mailbox(on_message=lambda folder, uid: seen.append(uid))["INBOX"]

    assert seen == uids
    assert (result.found, result.created) == (5, 5)
    assert stored_ids() == [f"<order-{n}@customer.example>" for n in range(1, 6)]


def test_it_polls_several_folders(dovecot, settings):
    dovecot.settings(settings, folders=["INBOX", "Billing"])
    dovecot.append("INBOX", message(1))
    dovecot.append("Billing", message(2))
    dovecot.append("Billing", message(3))

    out, _ = poll()

    assert "support@acme.example/INBOX: 1 new on the server, 1 stored." in out
    assert "support@acme.example/Billing: 2 new on the server, 2 stored." in out
    assert (cursor("INBOX").last_uid, cursor("Billing").last_uid) == (1, 2)
    assert Email.objects.count() == 3


def test_the_folder_option_polls_only_those_folders(dovecot, settings):
    dovecot.settings(settings, folders=["INBOX", "Billing"])
    dovecot.append("INBOX", message(1))
    dovecot.append("Billing", message(2))

    poll(folders=["Billing"])

    assert stored_ids() == ["<order-2@customer.example>"]
    assert not MailboxCursor.objects.filter(folder="INBOX").exists()


def test_the_same_message_in_two_folders_is_stored_once(dovecot, settings):
    dovecot.settings(settings, folders=["INBOX", "Billing"])
    dovecot.append("INBOX", message(1))
    dovecot.append("Billing", message(1))

    results = poll_mailbox()

    assert (results["INBOX"].created, results["Billing"].duplicates) == (1, 1)
    assert Email.objects.count() == 1


def test_the_command_shows_progress(dovecot, settings):
    dovecot.settings(settings)
    for n in (1, 2, 3):
        dovecot.append("INBOX", message(n))

    _, err = poll()

    assert "support@acme.example/INBOX [##############################] 3/3" in err


def test_the_loop_keeps_polling_through_failures_until_interrupted(dovecot, settings, monkeypatch):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    polls, sleeps = [], []

    def poll_once(cfg, **hooks):
        polls.append(cfg.folders)
        if len(polls) == 2:
            raise IntegrationError("Cannot connect to IMAP server: Connection refused")
        return poll_mailbox(cfg, **hooks)

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 2:
            dovecot.append("INBOX", message(2))
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr("actions.management.commands.ingest_imap.poll_mailbox", poll_once)
    monkeypatch.setattr("actions.management.commands.ingest_imap.time.sleep", sleep)
    out, err = poll(loop=True, interval=7)

    assert (len(polls), sleeps) == (3, [7, 7, 7])
    assert "Connection refused" in err
    assert out.strip().endswith("Stopped.")
    assert stored_ids() == ["<order-1@customer.example>", "<order-2@customer.example>"]


# --- UIDVALIDITY ---


def test_a_recreated_folder_is_read_again_without_storing_twice(dovecot, settings):
    dovecot.settings(settings, folders=["Billing"])
    dovecot.append("Billing", message(1))
    dovecot.append("Billing", message(2))
    poll_mailbox()
    old_validity = cursor("Billing").uidvalidity

    # The server rebuilt the folder: same mail, new UIDs, new UIDVALIDITY.
    dovecot.delete_folder("Billing")
    dovecot.append("Billing", message(3))
    dovecot.append("Billing", message(1))
    dovecot.append("Billing", message(2))
    result = poll_mailbox()["Billing"]

    assert dovecot.uidvalidity("Billing") != old_validity
    moved = Email.objects.get(message_id="<order-1@customer.example>")
    assert (moved.imap_uid, moved.imap_uidvalidity) == (2, dovecot.uidvalidity("Billing"))
    assert result.uidvalidity_reset
    assert (result.found, result.created, result.duplicates) == (3, 1, 2)
    assert Email.objects.count() == 3
    assert (cursor("Billing").uidvalidity, cursor("Billing").last_uid) == (dovecot.uidvalidity("Billing"), 3)


def test_a_changed_uidvalidity_resets_the_cursor(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", message(2))
    poll_mailbox()
    MailboxCursor.objects.filter(mailbox=MAILBOX).update(uidvalidity=12345, last_uid=999)

    result = poll_mailbox()["INBOX"]

    assert result.uidvalidity_reset
    assert (result.found, result.created, result.duplicates) == (2, 0, 2)
    assert (cursor().uidvalidity, cursor().last_uid) == (dovecot.uidvalidity(), 2)
    assert Email.objects.count() == 2


# --- One bad message blocks nothing ---


def test_a_broken_message_is_quarantined_and_the_next_ones_are_stored(dovecot, settings):
    dovecot.settings(settings)
    settings.MAX_MESSAGE_BYTES = 4096
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", message(2, size=10_000))
    dovecot.append("INBOX", message(3))

    result = poll_mailbox()["INBOX"]

    assert (result.created, result.quarantined, result.errors) == (3, 1, [])
    assert Email.objects.get(message_id="<order-2@customer.example>").status == EmailStatus.QUARANTINED
    assert Email.objects.exclude(status=EmailStatus.QUARANTINED).count() == 2
    assert cursor().last_uid == 3


def test_a_message_that_cannot_be_stored_is_skipped_and_reported(dovecot, settings, monkeypatch, caplog):
    dovecot.settings(settings)
    real_ingest = integrations.imap.poll.ingest_message

    def ingest(raw: bytes, **kwargs):
        if b"<order-2@customer.example>" in raw:
            raise ValueError("something no one expected")
        return real_ingest(raw, **kwargs)

    monkeypatch.setattr(integrations.imap.poll, "ingest_message", ingest)
    dovecot.append("INBOX", message(1))
    bad_uid = dovecot.append("INBOX", message(2))
    dovecot.append("INBOX", message(3))

    error, out, err = poll_failing(1)

    assert stored_ids() == ["<order-1@customer.example>", "<order-3@customer.example>"]
    assert "3 new on the server, 2 stored, 1 failed" in out
    assert f"UID {bad_uid}: intake failed (Message-ID <order-2@customer.example>)" in err
    assert "could not be stored are still in the mailbox" in str(error)
    last_error = cursor().last_error
    assert f"UID {bad_uid} skipped, still in 'INBOX'" in last_error
    assert "ValueError: something no one expected" in last_error
    assert "has not arrived" not in caplog.text  # the log names the message, not its content
    assert len(dovecot.flags()) == 3

    # Moved past, not retried every minute; still named until a person clears it.
    dovecot.append("INBOX", message(4))
    out, _ = poll()
    assert "1 new on the server, 1 stored." in out
    assert f"UID {bad_uid} skipped" in cursor().last_error


def test_a_message_the_server_does_not_return_is_skipped(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    lost_uid = dovecot.append("INBOX", message(2))
    dovecot.append("INBOX", message(3))
    cfg = ImapSettings.from_settings()

    with connect(cfg) as client:
        real_fetch = client.fetch

        def fetch(uids, data):
            return {uid: values for uid, values in real_fetch(uids, data).items() if uid != lost_uid}

        client.fetch = fetch
        result = poll_folder(client, cfg, "INBOX")

    assert (result.found, result.fetched, result.created, result.failed) == (3, 2, 2, 1)
    assert result.errors == [f"UID {lost_uid}: the server returned no body (expunged meanwhile, or unreadable)"]
    assert cursor().last_uid == 3


def test_a_message_the_server_refuses_to_send_is_skipped_alone(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))
    damaged_uid = dovecot.append("INBOX", message(2))
    dovecot.append("INBOX", message(3))
    cfg = ImapSettings.from_settings()

    with connect(cfg) as client:
        real_fetch = client.fetch

        def fetch(uids, data):
            # As Dovecot answers for a message file it cannot read.
            if damaged_uid in uids:
                raise IMAPClientError("FETCH command error: NO [SERVERBUG] Internal error occurred.")
            return real_fetch(uids, data)

        client.fetch = fetch
        result = poll_folder(client, cfg, "INBOX")

    assert (result.created, result.failed) == (2, 1)
    assert result.errors == [
        f"UID {damaged_uid}: the server refused to send it: FETCH command error: NO [SERVERBUG] "
        "Internal error occurred."
    ]
    assert stored_ids() == ["<order-1@customer.example>", "<order-3@customer.example>"]


def test_a_database_outage_stops_the_poll_without_skipping(dovecot, settings, monkeypatch):
    dovecot.settings(settings)
    real_ingest = integrations.imap.poll.ingest_message
    outage = {"on": True}

    def ingest(raw: bytes, **kwargs):
        if outage["on"] and b"<order-2@customer.example>" in raw:
            raise OperationalError("server closed the connection unexpectedly")
        return real_ingest(raw, **kwargs)

    monkeypatch.setattr(integrations.imap.poll, "ingest_message", ingest)
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", message(2))
    dovecot.append("INBOX", message(3))

    with pytest.raises(OperationalError):
        poll_mailbox()
    assert (stored_ids(), cursor().last_uid) == (["<order-1@customer.example>"], 1)

    outage["on"] = False
    result = poll_mailbox()["INBOX"]
    assert (result.found, result.created) == (2, 2)
    assert Email.objects.count() == 3


def test_a_poll_out_of_time_leaves_the_rest_for_the_next(dovecot, settings):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))

    result = poll_mailbox(deadline=0)["INBOX"]

    assert (result.found, result.fetched, result.left) == (1, 0, 1)
    assert cursor().last_uid == 0
    assert poll_mailbox()["INBOX"].created == 1


def test_a_missing_folder_is_reported_and_the_others_are_polled(dovecot, settings):
    dovecot.settings(settings, folders=["Archive/2019", "INBOX"])
    dovecot.append("INBOX", message(1))

    _, out, _ = poll_failing(1)

    assert Email.objects.count() == 1
    assert "support@acme.example/Archive/2019: not polled: Cannot open folder 'Archive/2019'" in out
    assert "Cannot open folder 'Archive/2019'" in cursor("Archive/2019").last_error
