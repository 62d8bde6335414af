"""The file backend: copies kept in the Django storage named "uploads" (the filesystem or S3, by settings).

Storing is idempotent by path: a file already at the path with the same
content counts as stored (an earlier attempt of the same action put it
there), a different one is a conflict. Errors of the storage itself are
IntegrationError: transient (the action retries, the files circuit breaker
counts it) unless the storage's answer says trying again cannot help.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage, storages

from integrations.base import Backend
from integrations.errors import IntegrationError

# The STORAGES alias uploads go to; media (the emails' own attachments) stays in "default".
UPLOADS = "uploads"


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
    sha256: str
    # False when the same file was already there, stored by an earlier attempt.
    stored: bool


class FileStore(Backend):
    """Store, measure and delete files in one Django storage."""

    capability = "files"
    name = "storage"

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else storages[UPLOADS]

    def store(self, path: str, source: File, *, content_type: str = "") -> StoredFile:
        """Copy `source` to exactly `path`; keep an identical file found there; refuse a different one.

        `content_type` is what the bytes were found to be; storages that keep a
        type (S3) serve the file with it rather than one guessed from the name.
        """
        with storage_errors(f"storing {path}"), source.open("rb"):
            digest, size = file_digest(source), source.size
            if self.storage.exists(path):
                with self.storage.open(path, "rb") as existing:
                    if file_digest(existing) != digest:
                        raise FileConflict(path)
                return StoredFile(path, self._url(path), size, digest, stored=False)
            upload = File(source, name=PurePosixPath(path).name)
            upload.content_type = content_type or None
            name = self.storage.save(path, upload)
            if name != path:
                # Another writer got to the path between exists() and save(),
                # and the storage picked another name: drop ours, look again.
                self.storage.delete(name)
                raise IntegrationError(f"{path} appeared while it was being stored.")
            return StoredFile(path, self._url(path), size, digest, stored=True)

    def delete(self, path: str, *, sha256: str = "") -> str:
        """Delete the file at `path`: "deleted", "already gone", or "changed" (another file is there now, kept)."""
        with storage_errors(f"deleting {path}"):
            if not self.storage.exists(path):
                return "already gone"
            if sha256:
                with self.storage.open(path, "rb") as existing:
                    if file_digest(existing) != sha256:
                        return "changed"
            self.storage.delete(path)
            return "deleted"

    def exists(self, path: str) -> bool:
        with storage_errors(f"looking for {path}"):
            return self.storage.exists(path)

    def _url(self, path: str) -> str:
        try:
            return self.storage.url(path)
        except NotImplementedError:
            return ""  # A storage without public URLs: the path is the link.


def file_digest(file: File) -> str:
    """The SHA-256 of a Django file, read in chunks."""
    digest = hashlib.sha256()
    for chunk in file.chunks():
        digest.update(chunk)
    return digest.hexdigest()


def _permanent(exc: Exception) -> bool:
    """Whether a storage's error says trying again cannot help: a 4xx answer, other than timeout and throttling."""
    # botocore's ClientError (and its kin) carry the service's HTTP answer; an
    # OSError or a dropped connection carries none and may work next time.
    response = getattr(exc, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(response, dict) else None
    return isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)


@contextmanager
def storage_errors(doing: str) -> Iterator[None]:
    """Turn whatever a storage raises into IntegrationError, naming what was being done."""
    try:
        yield
    except IntegrationError:
        raise
    except SuspiciousFileOperation as exc:
        raise IntegrationError(f"Refused {doing}: {exc}", permanent=True) from exc
    except Exception as exc:
        # Each storage raises its own SDK's errors (OSError, botocore...); whichever
        # it is, the storage failed, and only its own answer can say for good.
        raise IntegrationError(
            f"Storage failed {doing}: {type(exc).__name__}: {exc}", permanent=_permanent(exc)
        ) from exc
