"""Files: where copies of attachments go (the "uploads" storage), and what a file's bytes really are.

`file_backend()` is the capability's factory: a FileStore on the "uploads"
storage, of the kind that storage is (the filesystem under MEDIA_ROOT, or S3
when FILE_STORAGE=s3). `screen()` decides whether a file may be stored at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files.storage import FileSystemStorage, storages

from integrations.base import Health
from integrations.files.screen import Verdict, screen, type_allowed
from integrations.files.sniff import Sniffed, sniff
from integrations.files.store import UPLOADS, FileConflict, FileStore, StoredFile, file_digest, storage_errors

__all__ = [
    "UPLOADS",
    "FileConflict",
    "FileStore",
    "FilesystemFiles",
    "Sniffed",
    "StoredFile",
    "Verdict",
    "file_backend",
    "file_digest",
    "screen",
    "sniff",
    "storage_errors",
    "type_allowed",
]


class FilesystemFiles(FileStore):
    """Uploads kept in a folder (MEDIA_ROOT unless the storage says otherwise)."""

    name = "filesystem"
    storage: FileSystemStorage

    def health(self) -> Health:
        try:
            return self._check(Path(self.storage.location))
        except Exception as exc:  # An odd setting or file system: say so, never raise.
            return self.unhealthy(f"The uploads folder cannot be checked: {type(exc).__name__}: {exc}")

    def _check(self, folder: Path) -> Health:
        if folder.exists():
            if not folder.is_dir():
                return self.unhealthy(f"{folder} is not a folder.")
            if os.access(folder, os.W_OK | os.X_OK):
                return self.healthy(f"{folder} is writable.")
            return self.unhealthy(f"{folder} is not writable by this process.")
        # Not there yet (nothing uploaded so far): saving creates it, if its nearest folder allows.
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return self.healthy(f"{folder} will be created on the first upload.")
        return self.unhealthy(f"{folder} does not exist and cannot be created.")


def file_backend() -> FileStore:
    """The backend for the "uploads" storage, chosen by what that storage is."""
    storage = storages[UPLOADS]
    if isinstance(storage, FileSystemStorage):
        return FilesystemFiles(storage)
    from storages.backends.s3 import S3Storage

    from integrations.files.s3 import S3Files  # boto3 loads only where S3 is used.

    if isinstance(storage, S3Storage):
        return S3Files(storage)
    return FileStore(storage)
