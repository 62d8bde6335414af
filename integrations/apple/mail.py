"""Apple Mail: sending (a Django email backend) and archiving by Message-ID, with undo."""

from __future__ import annotations

import tempfile
from email.mime.base import MIMEBase
from email.utils import getaddresses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

from integrations.apple import scripts
from integrations.apple.app import AppleApp
from integrations.apple.osascript import available, normalise, unavailable_message
from integrations.base import Backend
from integrations.errors import IntegrationError, Unavailable
from integrations.mailbox import MailboxBackend

if TYPE_CHECKING:
    from actions.models import Email


class AppleMailBackend(AppleApp, BaseEmailBackend, Backend):
    """A Django email backend that sends each message through Mail.app (EMAIL_PROVIDER=apple).

    Mail composes the message itself, so only subject, text body, recipients,
    sender and attachments carry over: Message-ID, In-Reply-To, References and
    other headers are Mail's own, and an HTML alternative is not sent.
    """

    capability = "mail"
    name = "apple"
    app = "Apple Mail"

    def send_messages(self, email_messages: list[EmailMessage]) -> int:
        if not email_messages:
            return 0
        if not available():
            if self.fail_silently:
                return 0
            raise Unavailable(unavailable_message(self.app))
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                with tempfile.TemporaryDirectory(prefix="mailroom-attachments-") as folder:
                    self.run(self.script_for(message, Path(folder)))
            except IntegrationError:
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent

    def script_for(self, message: EmailMessage, folder: Path) -> str:
        """The script that sends `message`, its attachments first written as files into `folder`."""
        return scripts.send_message(
            subject=str(message.subject),
            content=str(message.body),
            to=_addresses(message.to),
            cc=_addresses(message.cc),
            bcc=_addresses(message.bcc),
            sender=str(message.from_email or ""),
            account=settings.APPLE_MAIL_ACCOUNT,
            attachments=[str(path) for path in _write_attachments(message, folder)],
        )

    def health_script(self) -> str:
        return scripts.mail_health(account=settings.APPLE_MAIL_ACCOUNT)


class AppleMailbox(AppleApp, MailboxBackend):
    """Archives a message in Mail.app: from the account's inbox to APPLE_ARCHIVE_MAILBOX, and back for undo."""

    name = "apple"
    app = "Apple Mail"

    def archive(self, email: Email) -> dict[str, Any]:
        message_id = mail_message_id(email.message_id)
        found = self.run(
            scripts.archive_message(
                message_id=message_id,
                account=settings.APPLE_MAIL_ACCOUNT,
                archive=settings.APPLE_ARCHIVE_MAILBOX,
            )
        )
        account, separator, mailbox = found.partition(scripts.FIELD_SEPARATOR)
        if not separator:
            raise IntegrationError(f"Mail said {found[:100]!r} instead of where the message was.", permanent=True)
        archive = settings.APPLE_ARCHIVE_MAILBOX
        return {"message_id": message_id, "account": account, "mailbox": mailbox, "archive": archive}

    def restore(self, email: Email, archived: dict[str, Any]) -> dict[str, Any]:
        account = archived.get("account") or settings.APPLE_MAIL_ACCOUNT
        mailbox = archived.get("mailbox") or "INBOX"
        if not account:
            raise IntegrationError("The archive record names no Mail account to move it back in.", permanent=True)
        self.run(
            scripts.restore_message(
                message_id=archived.get("message_id") or mail_message_id(email.message_id),
                account=account,
                archive=archived.get("archive") or settings.APPLE_ARCHIVE_MAILBOX,
                mailbox=mailbox,
            )
        )
        return {"account": account, "mailbox": mailbox}

    def health_script(self) -> str:
        return scripts.mail_health(account=settings.APPLE_MAIL_ACCOUNT)


def mail_message_id(header: str) -> str:
    """A Message-ID as Mail.app keeps it, without the angle brackets; IntegrationError when there is none."""
    message_id = header.strip().removeprefix("<").removesuffix(">").strip()
    if not message_id:
        raise IntegrationError("The email has no Message-ID, so Mail cannot find it.", permanent=True)
    return message_id


def _addresses(values: list[str]) -> list[str]:
    """Bare addresses: Mail takes a recipient's address alone, and "Name <a@b>" would be read as the address."""
    return [address for _, address in getaddresses([str(value) for value in values]) if address]


def _write_attachments(message: EmailMessage, folder: Path) -> list[Path]:
    """Each attachment as a file in `folder`, under its own (cleaned) name, for Mail to attach."""
    paths = []
    for number, attachment in enumerate(message.attachments, start=1):
        if isinstance(attachment, MIMEBase):
            filename, content = attachment.get_filename() or "", attachment.get_payload(decode=True) or b""
        else:
            filename, content = attachment[0] or "", attachment[1]
        if isinstance(content, str):
            content = content.encode("utf-8")
        # A folder per attachment: two attachments may share a name.
        path = folder / str(number) / _safe_filename(filename, fallback=f"attachment-{number}")
        path.parent.mkdir()
        path.write_bytes(content)
        paths.append(path)
    return paths


def _safe_filename(name: str, *, fallback: str) -> str:
    """An attachment's name as one file name: no folders, no control characters, not hidden."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(char for char in normalise(base) if char not in "\t\n\r\ufffd").strip().lstrip(".")
    return cleaned[:200] or fallback
