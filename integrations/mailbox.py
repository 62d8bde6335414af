"""The mailbox interface (archive_email): where a message is moved to archive it, and moved back for undo.

MAILBOX_BACKEND chooses: local (a flag in Mailroom only), imap (IMAP MOVE on
the server the message came from) or apple (Apple Mail on this Mac).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from actions.models import Email
from integrations.base import Backend


class MailboxBackend(Backend):
    """Moves one stored email's message within the mailbox it came from."""

    capability = "mailbox"

    def why_not(self, email: Email) -> str:
        """Why this backend has no message of `email` to move (archiving is then Mailroom's flag alone), or ""."""
        return ""

    def archive(self, email: Email) -> dict[str, Any]:
        """Move the message to the archive; return (JSON-able) what `restore` needs to move it back.

        `{"moved": False, "why": ...}` says nothing was moved (it was in the
        archive already), and `restore` is then not called. IntegrationError
        when it cannot be moved: permanent when the message is not there.
        """
        raise NotImplementedError

    def restore(self, email: Email, archived: dict[str, Any]) -> dict[str, Any]:
        """Move the message back to where `archive` found it; return details for the audit trail."""
        raise NotImplementedError


class LocalMailbox(MailboxBackend):
    """No mailbox outside Mailroom: archiving is the email's archived flag alone."""

    name = "local"

    def why_not(self, email: Email) -> str:
        return "MAILBOX_BACKEND is local: archiving is Mailroom's flag alone."

    def archive(self, email: Email) -> dict[str, Any]:
        return {}

    def restore(self, email: Email, archived: dict[str, Any]) -> dict[str, Any]:
        return {}


def mailbox_backend() -> MailboxBackend:
    """The mailbox backend MAILBOX_BACKEND names."""
    if settings.MAILBOX_BACKEND == "imap":
        from integrations.imap import ImapMailbox

        return ImapMailbox()
    if settings.MAILBOX_BACKEND == "apple":
        from integrations.apple import AppleMailbox

        return AppleMailbox()
    return LocalMailbox()
