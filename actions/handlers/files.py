"""The upload_file handler: copies of an email's attachments in the uploads storage, checked by their bytes.

Copies go to uploads/<folder or action id>/<file name>. Paths are chosen
from the action and the attachment alone, never at random, so a redelivered
action finds the copies it already made (same path, same content) and makes
no second one.

Each attachment is screened first (integrations.files.screen): too large,
dangerous, of a type not allowed, or named as something it is not, it is
refused with the reason in the action's result, and the others are still
stored. Refusing every file fails the action for good. A refused attachment
stays on its email either way: nothing here deletes attachments.
"""

from __future__ import annotations

import re
from contextlib import suppress
from pathlib import PurePosixPath
from typing import Annotated, Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.utils.text import get_valid_filename
from pydantic import AfterValidator, Field

from actions.handlers import register
from actions.handlers.base import ActionFailed, Handler, Outcome, Params, UndoRefused, email_of
from actions.models import Action, ActionType, Attachment, Email
from integrations.errors import IntegrationError
from integrations.files import FileConflict, FileStore, StoredFile, Verdict, file_backend, screen

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
        verdicts = [(attachment, _screen(attachment)) for attachment in attachments]
        accepted = [(attachment, verdict) for attachment, verdict in verdicts if not verdict.refusal]
        refused = [
            {"attachment_id": attachment.pk, "filename": attachment.filename, "reason": verdict.refusal}
            for attachment, verdict in verdicts
            if verdict.refusal
        ]
        if not accepted:
            raise ActionFailed("Not uploaded: " + "; ".join(entry["reason"] for entry in refused) + ".")
        store = file_backend()
        copies = self._store_all(store, f"uploads/{params.folder or action.pk}", accepted)
        # What undo may delete: what this action stored. An identical file found
        # in a shared folder may be another action's; in the action's own folder
        # it can only be from an earlier attempt of this one.
        ours = [copy for _, _, copy in copies if copy.stored or params.folder is None]
        return Outcome(
            result={
                "files": [
                    {
                        "attachment_id": attachment.pk,
                        "filename": attachment.filename,
                        "type": verdict.sniffed.mime,
                        "path": copy.path,
                        "url": copy.url,
                        "size": copy.size,
                        "already_stored": not copy.stored,
                    }
                    for attachment, verdict, copy in copies
                ],
                "refused": refused,
            },
            undo_data={
                "paths": list(dict.fromkeys(copy.path for copy in ours)),
                "sha256": {copy.path: copy.sha256 for copy in ours},
            },
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

    def _store_all(
        self, store: FileStore, folder: str, accepted: list[tuple[Attachment, Verdict]]
    ) -> list[tuple[Attachment, Verdict, StoredFile]]:
        copies: list[tuple[Attachment, Verdict, StoredFile]] = []
        try:
            for attachment, verdict in accepted:
                copies.append((attachment, verdict, self._store(store, folder, attachment, verdict.sniffed.mime)))
        except IntegrationError:
            # Take back what this attempt stored, so a failed action leaves
            # nothing behind and the retry starts from the same place.
            for _, _, copy in copies:
                # A storage failing here too leaves the copy; the retry finds it and keeps it.
                with suppress(IntegrationError):
                    if copy.stored:
                        store.delete(copy.path, sha256=copy.sha256)
            raise
        return copies

    def _store(self, store: FileStore, folder: str, attachment: Attachment, content_type: str) -> StoredFile:
        name = stored_name(attachment)
        try:
            return store.store(f"{folder}/{name}", attachment.file, content_type=content_type)
        except FileConflict:
            # Another file has that name (two attachments called image.png, or an
            # earlier upload to the same folder): the attachment's id tells them apart.
            path = PurePosixPath(name)
            return store.store(
                f"{folder}/{path.stem}-{attachment.pk}{path.suffix}", attachment.file, content_type=content_type
            )

    def undo(self, action: Action, params: UploadFileParams) -> dict[str, Any]:
        if "paths" not in action.undo_data:
            raise UndoRefused(f"Action {action.pk} kept no paths of stored files to delete.")
        store = file_backend()
        digests = action.undo_data.get("sha256", {})
        # Only what this action stored, and only while it is still the same file.
        done = {path: store.delete(path, sha256=digests.get(path, "")) for path in action.undo_data["paths"]}
        return {
            "deleted": [path for path, what in done.items() if what == "deleted"],
            "already_gone": [path for path, what in done.items() if what == "already gone"],
            "changed_since": [path for path, what in done.items() if what == "changed"],
        }


def _screen(attachment: Attachment) -> Verdict:
    if not attachment.file:
        return Verdict(None, f"{attachment.filename} has no stored content")
    return screen(
        attachment.filename,
        attachment.content_type,
        attachment.file,
        max_bytes=settings.UPLOAD_MAX_BYTES,
        allowed=settings.UPLOAD_ALLOWED_TYPES,
    )
