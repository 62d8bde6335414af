"""Archiving on a real Dovecot: the message moves to the archive folder (UID MOVE, or COPY and UID EXPUNGE) and back.

Messages come in through the IMAP poll, as in production, so each email
knows where its message sits; then the mailbox backend or the archive_email
action moves it, and the folders are looked at with a second connection.
"""

from __future__ import annotations

import logging

import pytest
from imapclient import DELETED, SEEN

from actions.executor import queue_action, run_action, undo_action
from actions.handlers import UndoRefused, get_handler
from actions.models import Action, ActionStatus, Email
from actions.proposals import propose_action
from integrations import registry
from integrations.errors import IntegrationError
from integrations.imap import ImapMailbox, poll_mailbox
from integrations.mailbox import LocalMailbox, mailbox_backend
from integrations.models import Circuit
from tests.test_imap import message

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

FLAGGED = b"\\Flagged"


@pytest.fixture(autouse=True)
def _intake(settings):
    settings.PROCESS_ON_INTAKE = False
    settings.MAILBOX_BACKEND = "imap"
    settings.IMAP_ARCHIVE_FOLDER = "Archive"
    settings.SEND_DELAY_SECONDS = 0


def delivered(account, settings, n: int = 1, *, flags: tuple[bytes, ...] = (), folder: str = "INBOX") -> Email:
    """Message n delivered to `folder` on the account and polled in, as in production."""
    account.settings(settings, folders=[folder])
    account.append(folder, message(n), flags=flags)
    poll_mailbox()
    return Email.objects.get(message_id=f"<order-{n}@customer.example>")


def folder(account, name: str) -> list[tuple[bytes, ...]]:
    """The flags of each message in the folder, in UID order; [] for a folder that does not exist."""
    with account.client() as client:
        if not client.folder_exists(name):
            return []
    # \Recent only says which session saw the message first.
    return [tuple(sorted(set(flags) - {b"\\Recent"})) for _, flags in sorted(account.flags(name).items())]


def delete_on_server(account, name: str = "INBOX") -> None:
    """A person deletes every message of the folder in their mail client."""
    with account.client() as client:
        client.select_folder(name)
        client.add_flags(client.search("ALL"), [DELETED])
        client.expunge()


def where(email: Email) -> tuple[str, int | None, int | None]:
    email.refresh_from_db()
    return email.imap_folder, email.imap_uid, email.imap_uidvalidity


# --- The backend ---


def test_the_mailbox_backend_is_imap_when_configured(settings):
    assert isinstance(mailbox_backend(), ImapMailbox)
    settings.MAILBOX_BACKEND = "local"
    assert isinstance(mailbox_backend(), LocalMailbox)


def test_archiving_moves_the_message_to_the_archive_and_marks_it_read(dovecot, settings):
    email = delivered(dovecot, settings, flags=(FLAGGED,))
    inbox_uid = email.imap_uid

    archived = ImapMailbox().archive(email)

    assert folder(dovecot, "INBOX") == []
    assert folder(dovecot, "Archive") == [(FLAGGED, SEEN)]
    assert archived == {
        "moved": True,
        "folder": "INBOX",
        "uid": inbox_uid,
        "uidvalidity": dovecot.uidvalidity("INBOX"),
        "archive_folder": "Archive",
        "archive_uid": 1,
        "archive_uidvalidity": dovecot.uidvalidity("Archive"),
        "flags": ["\\Flagged"],
    }
    assert where(email) == ("Archive", 1, dovecot.uidvalidity("Archive"))


def test_restoring_brings_it_back_unread_with_its_flags(dovecot, settings):
    email = delivered(dovecot, settings, flags=(FLAGGED,))
    backend = ImapMailbox()
    archived = backend.archive(email)

    restored = backend.restore(email, archived)

    assert folder(dovecot, "Archive") == []
    assert folder(dovecot, "INBOX") == [(FLAGGED,)]
    assert restored == {"folder": "INBOX", "uid": 2, "uidvalidity": dovecot.uidvalidity("INBOX"), "seen": False}
    assert where(email) == ("INBOX", 2, dovecot.uidvalidity("INBOX"))


def test_a_message_read_before_is_restored_read(dovecot, settings):
    email = delivered(dovecot, settings, flags=(SEEN,))
    backend = ImapMailbox()

    backend.restore(email, backend.archive(email))

    assert folder(dovecot, "INBOX") == [(SEEN,)]


def test_a_message_whose_folder_was_rebuilt_is_found_by_its_message_id(dovecot, settings):
    email = delivered(dovecot, settings, folder="Billing")
    dovecot.delete_folder("Billing")
    dovecot.append("Billing", message(7))
    dovecot.append("Billing", message(1))  # same message, new UIDVALIDITY, UID 2

    archived = ImapMailbox().archive(email)

    assert (archived["folder"], archived["uid"], archived["uidvalidity"]) == (
        "Billing",
        2,
        dovecot.uidvalidity("Billing"),
    )
    assert folder(dovecot, "Billing") == [()]
    assert folder(dovecot, "Archive") == [(SEEN,)]


def test_archiving_a_message_deleted_on_the_server_is_a_permanent_error_naming_it(dovecot, settings):
    email = delivered(dovecot, settings)
    delete_on_server(dovecot)

    with pytest.raises(IntegrationError) as caught:
        ImapMailbox().archive(email)

    assert caught.value.permanent
    assert "The message <order-1@customer.example> is no longer in 'INBOX' on the IMAP server" in str(caught.value)
    assert where(email)[0] == "INBOX"


def test_restoring_a_message_deleted_from_the_archive_is_a_permanent_error(dovecot, settings):
    email = delivered(dovecot, settings)
    backend = ImapMailbox()
    archived = backend.archive(email)
    delete_on_server(dovecot, "Archive")

    with pytest.raises(IntegrationError, match="no longer in 'Archive'") as caught:
        backend.restore(email, archived)

    assert caught.value.permanent


def test_without_move_it_copies_and_expunges_only_that_message(plain_dovecot, settings):
    email = delivered(plain_dovecot, settings, flags=(FLAGGED,))
    # A mail client marked another message deleted without expunging it yet: it must stay.
    plain_dovecot.append("INBOX", message(2), flags=(DELETED,))
    backend = ImapMailbox()
    with plain_dovecot.client() as client:
        assert not client.has_capability("MOVE")

    archived = backend.archive(email)

    assert folder(plain_dovecot, "INBOX") == [(DELETED,)]
    assert folder(plain_dovecot, "Archive") == [(FLAGGED, SEEN)]
    assert (archived["archive_folder"], archived["archive_uid"]) == ("Archive", 1)

    backend.restore(email, archived)
    assert folder(plain_dovecot, "INBOX") == [(DELETED,), (FLAGGED,)]
    assert folder(plain_dovecot, "Archive") == []


def test_health_is_ok_when_dovecot_answers(dovecot, settings):
    dovecot.settings(settings)

    health = registry.check("mailbox")

    assert (health.ok, health.backend) == (True, "imap")
    assert f"127.0.0.1:{dovecot.port} answers" in health.detail


def test_health_says_when_the_server_is_down(settings, unused_port):
    settings.IMAP_HOST, settings.IMAP_PORT, settings.IMAP_SSL = "127.0.0.1", unused_port, False

    health = ImapMailbox().health()

    assert not health.ok
    assert f"127.0.0.1:{unused_port}" in health.detail and "Connection refused" in health.detail


def test_health_never_shows_the_password(dovecot, settings, caplog):
    dovecot.settings(settings)
    settings.IMAP_PASSWORD = "Tr0ub4dor&3-not-this-one"
    caplog.set_level(logging.DEBUG)

    health = ImapMailbox().health()

    assert not health.ok and "refused the login" in health.detail
    assert "Tr0ub4dor" not in health.detail + caplog.text


# --- The archive_email action ---


def executed(email: Email) -> Action:
    """An archive_email action about `email`, queued and run by the executor."""
    action = queue_action(propose_action("archive_email", email=email), actor="test")
    run_action(action.pk)
    return Action.objects.get(pk=action.pk)


def test_the_handler_guards_its_calls_with_the_mailbox_circuit():
    assert get_handler("archive_email").capability == "mailbox"


def test_an_archive_action_moves_the_message_and_undo_moves_it_back(dovecot, settings):
    email = delivered(dovecot, settings)

    action = executed(email)

    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    assert action.result["mailbox"]["moved"] and action.result["mailbox"]["archive_folder"] == "Archive"
    assert (folder(dovecot, "INBOX"), folder(dovecot, "Archive")) == ([], [(SEEN,)])
    assert Email.objects.get(pk=email.pk).archived_at is not None

    details = undo_action(action)

    assert details["unarchived"] and details["mailbox"]["restored"]
    assert (folder(dovecot, "INBOX"), folder(dovecot, "Archive")) == ([()], [])
    assert Email.objects.get(pk=email.pk).archived_at is None
    assert where(email) == ("INBOX", 2, dovecot.uidvalidity("INBOX"))


def test_a_redelivered_archive_action_moves_the_message_once(dovecot, settings):
    email = delivered(dovecot, settings)
    action = propose_action("archive_email", email=email)
    handler = get_handler("archive_email")

    first = handler.execute(action, handler.parse(action))
    second = handler.execute(action, handler.parse(action))

    assert first.result == second.result
    assert folder(dovecot, "Archive") == [(SEEN,)]


def test_an_archive_cut_short_after_the_move_finds_the_message_in_the_archive(dovecot, settings):
    email = delivered(dovecot, settings)
    ImapMailbox().archive(email)  # the move happened; recording it did not

    action = executed(Email.objects.get(pk=email.pk))

    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    assert action.result["mailbox"] == {
        "backend": "imap",
        "moved": False,
        "why": "It is in 'Archive' already.",
        "archive_folder": "Archive",
    }
    assert folder(dovecot, "Archive") == [(SEEN,)]


def test_an_email_not_from_imap_is_only_flagged_and_the_result_says_why(make_email, settings):
    settings.IMAP_HOST = "127.0.0.1"  # never reached: there is nothing to move
    email = make_email()

    action = executed(email)

    assert action.status == ActionStatus.SUCCEEDED, action.last_error
    assert Email.objects.get(pk=email.pk).archived_at is not None
    assert action.result["mailbox"]["moved"] is False
    assert "did not come from IMAP (it came by Import)" in action.result["mailbox"]["why"]
    undo_action(action)
    assert Email.objects.get(pk=email.pk).archived_at is None


def test_with_the_local_backend_only_the_flag_is_set(dovecot, settings):
    email = delivered(dovecot, settings)
    settings.MAILBOX_BACKEND = "local"

    action = executed(email)

    assert "MAILBOX_BACKEND is local" in action.result["mailbox"]["why"]
    assert (folder(dovecot, "INBOX"), Email.objects.get(pk=email.pk).archived_at is not None) == ([()], True)


def test_an_action_whose_message_is_gone_fails_for_good_and_leaves_the_email_unarchived(dovecot, settings):
    email = delivered(dovecot, settings)
    delete_on_server(dovecot)

    action = executed(email)

    assert action.status == ActionStatus.DEAD
    assert "<order-1@customer.example> is no longer in 'INBOX'" in action.last_error
    assert Email.objects.get(pk=email.pk).archived_at is None


def test_a_server_that_is_down_is_retried_and_counts_against_the_circuit(dovecot, settings, unused_port):
    email = delivered(dovecot, settings)
    settings.IMAP_PORT = unused_port

    action = executed(email)

    assert action.status == ActionStatus.FAILED
    assert "Connection refused" in action.last_error
    assert Circuit.objects.get(name="mailbox").failures == 1
    assert Email.objects.get(pk=email.pk).archived_at is None


def test_undo_is_refused_when_the_message_left_the_archive_and_the_email_stays_archived(dovecot, settings):
    email = delivered(dovecot, settings)
    action = executed(email)
    delete_on_server(dovecot, "Archive")

    with pytest.raises(UndoRefused, match="no longer in 'Archive'"):
        undo_action(action)

    assert Action.objects.get(pk=action.pk).status == ActionStatus.SUCCEEDED
    assert Email.objects.get(pk=email.pk).archived_at is not None
