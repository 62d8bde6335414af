"""The file backend: copies kept in a Django storage (the default storage unless told otherwise).

Storing is idempotent by path: a file already at the path with the same
content counts as stored (an earlier attempt of the same action put it
there), a different one is a conflict. Any error of the storage itself is
an IntegrationError, transient, so the action retries and the files
circuit breaker counts it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage, default_storage

from integrations.errors import IntegrationError


class FileConflict(IntegrationError):
    """A different file is already at the path. Trying again will not change that."""

    def __init__(self, path: str) -> None:
        super().__init__(f"A different file is already stored at {path}.", permanent=True)
        self.path = path


@dataclass(frozen=True)
class StoredFile:
    path: str
    url: str
    size: int
    # False when the same file was already there, stored by an earlier attempt.
    stored: bool


class FileStore:
    """Store, measure and delete files in one Django storage."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else default_storage

    def size(self, source: File) -> int:
        with _storage_errors(f"reading {source.name}"):
            return source.size

    def store(self, path: str, source: File) -> StoredFile:
        """Copy `source` to exactly `path`; keep an identical file found there; refuse a different one."""
        with _storage_errors(f"storing {path}"), source.open("rb"):
            digest, size = _digest(source), source.size
            if self.storage.exists(path):
                with self.storage.open(path, "rb") as existing:
                    if _digest(existing) != digest:
                        raise FileConflict(path)
                return StoredFile(path, self._url(path), size, stored=False)
            name = self.storage.save(path, source)
            if name != path:
                # Another writer got to the path between exists() and save(),
                # and the storage picked another name: drop ours, look again.
                self.storage.delete(name)
                raise IntegrationError(f"{path} appeared while it was being stored.")
            return StoredFile(path, self._url(path), size, stored=True)

    def delete(self, path: str) -> bool:
        """Delete the file at `path`; False if there was none."""
        with _storage_errors(f"deleting {path}"):
            if not self.storage.exists(path):
                return False
            self.storage.delete(path)
            return True

    def _url(self, path: str) -> str:
        try:
            return self.storage.url(path)
        except NotImplementedError:
            return ""  # A storage without public URLs: the path is the link.


def _digest(file: File) -> str:
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _storage_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except IntegrationError:
        raise
    except SuspiciousFileOperation as exc:
        raise IntegrationError(f"Refused {doing}: {exc}", permanent=True) from exc
    except Exception as exc:
        # Each storage raises its own SDK's errors (OSError, botocore, google-cloud...);
        # whichever it is, the storage failed and may work again later.
        raise IntegrationError(f"Storage failed {doing}: {type(exc).__name__}: {exc}") from exc
