"""Uploads in S3 or any S3-compatible service (MinIO, Ceph, R2...), through django-storages and boto3.

Objects are private: links are signed URLs that expire (AWS_QUERYSTRING_EXPIRE).
Each object is served with the type its bytes were found to be and as a
download (Content-Disposition: attachment), so a browser never renders it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from storages.backends.s3 import S3Storage

from integrations.base import Health
from integrations.files.store import FileStore


class UploadS3Storage(S3Storage):
    """S3Storage with timeouts on every call, no silent renaming, and downloads rather than inline pages."""

    def __init__(self, **options: Any) -> None:
        timeout = settings.INTEGRATION_TIMEOUT_SECONDS
        options.setdefault(
            "client_config",
            # Few retries: the action itself is retried with backoff, and the
            # circuit breaker must hear of an outage soon.
            Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 2, "mode": "standard"}),
        )
        # FileStore looks before it writes; a name taken meanwhile must show, not be overwritten.
        options.setdefault("file_overwrite", False)
        super().__init__(**options)

    def get_object_parameters(self, name: str) -> dict[str, Any]:
        params = super().get_object_parameters(name)
        filename = name.rsplit("/", 1)[-1]
        params.setdefault("ContentDisposition", f"attachment; filename*=UTF-8''{quote(filename)}")
        return params


class S3Files(FileStore):
    """Uploads kept in one S3 bucket."""

    name = "s3"
    storage: S3Storage

    def health(self) -> Health:
        bucket = self.storage.bucket_name
        try:
            self.storage.connection.meta.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            answer = exc.response.get("Error", {})
            return self.unhealthy(f"Bucket {bucket} answered {answer.get('Code', '?')}: {answer.get('Message', '')}")
        except (BotoCoreError, OSError) as exc:
            return self.unhealthy(f"Bucket {bucket} cannot be reached: {type(exc).__name__}: {exc}")
        except Exception as exc:  # A bad setting shows here first; health never raises.
            return self.unhealthy(f"Bucket {bucket}: {type(exc).__name__}: {exc}")
        return self.healthy(f"Bucket {bucket} answers.")
