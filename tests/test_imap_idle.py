"""`ingest_imap --idle` against a real Dovecot: mail delivered while the watcher waits in IDLE is stored within seconds.

The watcher runs in a thread, as the command runs it; mail is delivered
with a second connection, as the mail server would.
"""

from __future__ import annotations

import io
import threading
import time

import pytest

from actions.management.commands.ingest_imap import Command
from actions.models import Email
from integrations.imap import FolderWatcher, ImapSettings
from tests.test_imap import message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _intake(settings):
    settings.PROCESS_ON_INTAKE = False


def stored(n: int) -> bool:
    return Email.objects.filter(message_id=f"<order-{n}@customer.example>").exists()


def eventually(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def watching():
    """Start a watcher's loop in a thread; stopped and joined after the test."""
    started: list[tuple[FolderWatcher, threading.Thread]] = []

    def start(watcher: FolderWatcher) -> threading.Thread:
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        started.append((watcher, thread))
        return thread

    yield start
    for watcher, thread in started:
        watcher.stop.set()
        thread.join(timeout=10)


def test_mail_delivered_during_idle_is_stored_within_seconds(dovecot, settings, watching):
    dovecot.settings(settings)
    dovecot.append("INBOX", message(1))  # waiting before the watcher starts: caught up at once
    watcher = FolderWatcher(ImapSettings.from_settings(), "INBOX", reconnect_seconds=0.1)
    watching(watcher)
    assert watcher.idling.wait(5), "the watcher never entered IDLE"
    assert stored(1)

    dovecot.append("INBOX", message(2))

    assert eventually(lambda: stored(2), seconds=5)
    assert watcher.uses_idle


def test_the_stop_flag_ends_the_loop(dovecot, settings, watching):
    dovecot.settings(settings)
    watcher = FolderWatcher(ImapSettings.from_settings(), "INBOX")
    thread = watching(watcher)
    assert watcher.idling.wait(5)

    watcher.stop.set()
    thread.join(timeout=5)

    assert not thread.is_alive()
    assert watcher.client is None  # logged out


def test_it_enters_idle_again_when_the_idle_period_ends(dovecot, settings):
    dovecot.settings(settings)
    watcher = FolderWatcher(ImapSettings.from_settings(), "INBOX", idle_seconds=0.5)
    watcher.open()
    try:
        started = time.monotonic()
        quiet = watcher.step()  # nothing arrives: IDLE ends after its period, and the folder is polled
        waited = time.monotonic() - started
        dovecot.append("INBOX", message(1))
        news = watcher.step()
    finally:
        watcher.close()

    assert 0.5 <= waited < 3
    assert (quiet.found, news.created) == (0, 1)


def test_a_dropped_connection_is_opened_again(dovecot, settings, watching):
    dovecot.settings(settings)
    watcher = FolderWatcher(ImapSettings.from_settings(), "INBOX", reconnect_seconds=0.1)
    watching(watcher)
    assert watcher.idling.wait(5)
    first_client = watcher.client

    first_client.socket().shutdown(2)  # the connection dies under the IDLE

    assert eventually(lambda: watcher.idling.is_set() and watcher.client is not first_client)
    dovecot.append("INBOX", message(1))
    assert eventually(lambda: stored(1))


def test_without_idle_it_polls_every_interval(plain_dovecot, settings):
    plain_dovecot.settings(settings)
    watcher = FolderWatcher(ImapSettings.from_settings(), "INBOX", poll_seconds=0.3)
    watcher.open()
    try:
        plain_dovecot.append("INBOX", message(1))
        started = time.monotonic()
        result = watcher.step()
        waited = time.monotonic() - started
    finally:
        watcher.close()

    assert not watcher.idling.is_set()
    assert 0.3 <= waited < 3
    assert result.created == 1 and stored(1)


def test_the_command_watches_every_folder_until_stopped(dovecot, settings):
    dovecot.settings(settings, folders=["INBOX", "Billing"])
    dovecot.create_folder("Billing")
    out = io.StringIO()
    command, stop = Command(stdout=out, stderr=io.StringIO()), threading.Event()
    thread = threading.Thread(target=command.watch, args=(ImapSettings.from_settings(), stop), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # both watchers connected
        dovecot.append("INBOX", message(1))
        dovecot.append("Billing", message(2))
        assert eventually(lambda: stored(1) and stored(2))
    finally:
        stop.set()
        thread.join(timeout=10)

    assert not thread.is_alive()
    assert "INBOX: 1 new on the server, 1 stored." in out.getvalue()
    assert "Billing: 1 new on the server, 1 stored." in out.getvalue()


def test_the_help_offers_idle():
    text = " ".join(Command().create_parser("manage.py", "ingest_imap").format_help().split())

    assert "--idle" in text and "IMAP IDLE" in text
