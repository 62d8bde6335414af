"""A real S3 peer on loopback: moto's S3 server, with a fresh bucket per test and the uploads storage pointed at it.

moto's server speaks the S3 HTTP protocol (SigV4, XML errors, signed URLs), so
django-storages and boto3 do exactly what they would against S3 or MinIO.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
ACCESS_KEY = "mailroom-test-key"
SECRET_KEY = "mailroom-test-secret"
# Objects go under this prefix, as AWS_LOCATION would put them.
LOCATION = "mailroom"


class S3Server:
    """moto's S3 server in a thread on a free loopback port."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.stop()


@dataclass
class Bucket:
    """One test's bucket, and a boto3 client to look into it directly."""

    name: str
    endpoint_url: str
    client: Any

    def key(self, path: str) -> str:
        return f"{LOCATION}/{path}"

    def read(self, path: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.key(path))["Body"].read()

    def head(self, path: str) -> dict:
        return self.client.head_object(Bucket=self.name, Key=self.key(path))

    def put(self, path: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.name, Key=self.key(path), Body=body)

    def paths(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name)
        return sorted(item["Key"].removeprefix(f"{LOCATION}/") for item in listing.get("Contents", []))


def client(endpoint_url: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(connect_timeout=5, read_timeout=5, retries={"max_attempts": 1}),
    )


def use_s3(settings, endpoint_url: str, bucket: str) -> None:
    """Point the uploads storage at `bucket` on `endpoint_url`, as FILE_STORAGE=s3 would."""
    settings.FILE_STORAGE = "s3"
    settings.INTEGRATION_TIMEOUT_SECONDS = 3
    settings.STORAGES = {
        **settings.STORAGES,
        "uploads": {
            "BACKEND": "integrations.files.s3.UploadS3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint_url,
                "region_name": REGION,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "location": LOCATION,
                "querystring_auth": True,
                "default_acl": None,
            },
        },
    }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, settings) -> Bucket:
    """A new, empty bucket that the uploads storage writes to."""
    name = f"mailroom-{uuid.uuid4().hex[:12]}"
    s3 = client(s3_server.url)
    s3.create_bucket(Bucket=name)
    use_s3(settings, s3_server.url, name)
    return Bucket(name, s3_server.url, s3)
