"""The upload_file handler: copies of an email's attachments in Django storage, size and type checked.

Copies go to uploads/<folder or action id>/<file name>. Paths are chosen
from the action and the attachment alone, never at random, so a redelivered
action finds the copies it already made (same path, same content) and makes
no second one.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.template.defaultfilters import filesizeformat
from django.utils.text import get_valid_filename
from pydantic import AfterValidator, Field

from actions.handlers import register
from actions.handlers.base import ActionFailed, Handler, Outcome, Params, UndoRefused, email_of
from actions.models import Action, ActionType, Attachment, Email
from integrations.files import FileConflict, FileStore, StoredFile

_FOLDER_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]*")
NAME_CHARS = 150


def _safe_folder(value: str) -> str:
    if "\\" in value:
        raise ValueError("must separate folders with /, not backslashes")
    if value.startswith(("/", "~")) or re.match(r"[A-Za-z]:", value):
        raise ValueError("must be a relative folder inside the uploads area, not an absolute path")
    parts = value.rstrip("/").split("/")
    if ".." in parts:
        raise ValueError("must not contain '..'")
    for part in parts:
        if not _FOLDER_PART.fullmatch(part):
            raise ValueError(
                f"has a folder name {part!r}: folder names are letters, digits, spaces, '.', '-' and '_', "
                "starting with a letter, digit or '_'"
            )
    return "/".join(parts)


Folder = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_safe_folder)]
AttachmentIds = Annotated[list[Annotated[int, Field(strict=True, gt=0)]], Field(min_length=1, max_length=100)]


def type_allowed(content_type: str, allowed: list[str]) -> bool:
    """Whether a MIME type matches one of the allowed entries: exact, "type/*" or "prefix.*"."""
    kind = content_type.split(";")[0].strip().lower()
    for entry in (entry.strip().lower() for entry in allowed):
        if kind == entry or (entry.endswith("*") and kind.startswith(entry[:-1])):
            return True
    return False


def stored_name(attachment: Attachment) -> str:
    """A file name safe to store: the attachment's own name without any folders, or one made from its id."""
    name = attachment.filename.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        name = str(get_valid_filename(name))
    except SuspiciousFileOperation:
        return f"attachment-{attachment.pk}"
    path = PurePosixPath(name)
    return path.stem[:NAME_CHARS] + path.suffix[:20]


class UploadFileParams(Params):
    attachment_ids: AttachmentIds | None = None
    folder: Folder | None = None


@register
class UploadFile(Handler):
    """Store copies of the email's attachments (all, or those named) and record where they are."""

    type = ActionType.UPLOAD_FILE
    params = UploadFileParams
    capability = "files"
    undoable = True

    def execute(self, action: Action, params: UploadFileParams) -> Outcome:
        email = email_of(action)
        attachments = self._attachments(email, params.attachment_ids)
        store = FileStore()
        # Every file is checked before any is stored, so a refusal leaves nothing behind.
        refusals = [why for why in (self._refusal(attachment, store) for attachment in attachments) if why]
        if refusals:
            raise ActionFailed("Not uploaded: " + "; ".join(refusals) + ".")
        folder = f"uploads/{params.folder or action.pk}"
        copies = [(attachment, self._store(store, folder, attachment)) for attachment in attachments]
        return Outcome(
            result={
                "files": [
                    {
                        "attachment_id": attachment.pk,
                        "filename": attachment.filename,
                        "path": copy.path,
                        "url": copy.url,
                        "size": copy.size,
                        "already_stored": not copy.stored,
                    }
                    for attachment, copy in copies
                ]
            },
            undo_data={"paths": list(dict.fromkeys(copy.path for _, copy in copies))},
        )

    def _attachments(self, email: Email, ids: list[int] | None) -> list[Attachment]:
        attachments = list(email.attachments.all())
        if ids is None:
            if not attachments:
                raise ActionFailed(f"Email {email.pk} has no attachments to upload.")
            return attachments
        by_id = {attachment.pk: attachment for attachment in attachments}
        strangers = [str(pk) for pk in ids if pk not in by_id]
        if strangers:
            raise ActionFailed(f"Attachment {', '.join(strangers)} is not an attachment of email {email.pk}.")
        return [by_id[pk] for pk in dict.fromkeys(ids)]

    def _refusal(self, attachment: Attachment, store: FileStore) -> str:
        """Why the attachment may not be uploaded, or an empty string."""
        if not attachment.file:
            return f"{attachment.filename} has no stored content"
        size = store.size(attachment.file)
        if size > settings.UPLOAD_MAX_BYTES:
            return (
                f"{attachment.filename} is {filesizeformat(size)}, "
                f"over the upload limit of {filesizeformat(settings.UPLOAD_MAX_BYTES)}"
            )
        if not type_allowed(attachment.content_type, settings.UPLOAD_ALLOWED_TYPES):
            return f"{attachment.filename} is of type {attachment.content_type}, which is not allowed for upload"
        return ""

    def _store(self, store: FileStore, folder: str, attachment: Attachment) -> StoredFile:
        name = stored_name(attachment)
        try:
            return store.store(f"{folder}/{name}", attachment.file)
        except FileConflict:
            # Another file has that name (two attachments called image.png, or an
            # earlier upload to the same folder): the attachment's id tells them apart.
            path = PurePosixPath(name)
            return store.store(f"{folder}/{path.stem}-{attachment.pk}{path.suffix}", attachment.file)

    def undo(self, action: Action, params: UploadFileParams) -> dict[str, Any]:
        paths = action.undo_data.get("paths")
        if not paths:
            raise UndoRefused(f"Action {action.pk} kept no paths of stored files to delete.")
        store = FileStore()
        deleted = {path: store.delete(path) for path in paths}
        return {
            "deleted": [path for path, gone in deleted.items() if gone],
            "already_gone": [path for path, gone in deleted.items() if not gone],
        }
