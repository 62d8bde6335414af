"""upload_file into S3: moto's S3 server on loopback (tests/s3.py), through the executor, read back with boto3.

Each test has its own bucket; objects live under the AWS_LOCATION prefix.
"""

from __future__ import annotations

import urllib.request

import pytest
from botocore.exceptions import ClientError

from actions.executor import undo_action
from actions.models import ActionStatus
from integrations import registry
from integrations.errors import IntegrationError
from integrations.files import FileConflict, file_backend
from integrations.models import Circuit
from tests.s3 import S3Server, client, use_s3
from tests.test_files import attach, execute, run, undo, upload
from tests.test_files_sniff import CSV, PDF, png, windows_exe


def test_the_files_capability_is_s3_and_healthy_when_the_bucket_answers(s3_bucket):
    backend = registry.backend("files")
    assert (backend.capability, backend.name) == ("files", "s3")
    health = registry.check("files")
    assert (health.ok, health.backend, health.detail) == (True, "s3", f"Bucket {s3_bucket.name} answers.")


def test_an_upload_lands_in_the_bucket_byte_for_byte_and_is_served_as_a_download(s3_bucket, make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    attach(email, "photo.png", png(), "image/png")
    said, action = execute(upload(email))
    assert said == "succeeded", action.last_error
    paths = [f"uploads/{action.pk}/contract.pdf", f"uploads/{action.pk}/photo.png"]
    assert s3_bucket.paths() == paths
    assert s3_bucket.read(paths[0]) == PDF
    assert s3_bucket.read(paths[1]) == png()
    head = s3_bucket.head(paths[0])
    assert (head["ContentType"], head["ContentDisposition"]) == (
        "application/pdf",
        "attachment; filename*=UTF-8''contract.pdf",
    )
    # The link is signed, and works without credentials until it expires.
    url = action.result["files"][0]["url"]
    assert url.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/mailroom/{paths[0]}?") and "Signature=" in url
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - a loopback URL the test built
        assert response.read() == PDF


def test_a_refused_file_never_reaches_the_bucket(s3_bucket, make_email, media):
    email = make_email()
    attach(email, "report.pdf", windows_exe(), "application/pdf")
    attach(email, "orders.csv", CSV, "text/csv")
    said, action = execute(upload(email))
    assert said == "succeeded"
    assert s3_bucket.paths() == [f"uploads/{action.pk}/orders.csv"]
    assert [entry["filename"] for entry in action.result["refused"]] == ["report.pdf"]


def test_undo_deletes_the_object_from_the_bucket(s3_bucket, make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    said, action = execute(upload(email))
    assert said == "succeeded"
    undo_action(action, actor="test")
    action.refresh_from_db()
    assert action.status == ActionStatus.UNDONE
    assert s3_bucket.paths() == []
    with pytest.raises(ClientError, match="404"):
        s3_bucket.head(f"uploads/{action.pk}/contract.pdf")


def test_a_redelivered_upload_keeps_the_object_it_already_stored(s3_bucket, make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    action = upload(email)
    first, again = run(action), run(action)
    assert s3_bucket.paths() == [f"uploads/{action.pk}/contract.pdf"]
    assert again.result["files"][0]["already_stored"] is True
    assert again.undo_data == first.undo_data


def test_a_different_object_at_the_path_is_a_conflict_and_is_left_alone(s3_bucket, make_email, media):
    email = make_email()
    contract = attach(email, "contract.pdf")
    action = upload(email)
    path = f"uploads/{action.pk}/contract.pdf"
    s3_bucket.put(path, b"%PDF-1.4 somebody else's contract\n")
    with pytest.raises(FileConflict, match=f"A different file is already stored at {path}") as conflict:
        file_backend().store(path, contract.file)
    assert conflict.value.permanent
    # The handler keeps both: its copy takes the attachment's id.
    outcome = run(action)
    assert s3_bucket.paths() == [f"uploads/{action.pk}/contract-{contract.pk}.pdf", path]
    assert s3_bucket.read(path) == b"%PDF-1.4 somebody else's contract\n"
    undo(action, outcome)
    assert s3_bucket.paths() == [path]


def test_when_s3_is_down_the_upload_fails_for_now_and_health_says_unhealthy(settings, make_email, media):
    server = S3Server()
    client(server.url).create_bucket(Bucket="short-lived")
    use_s3(settings, server.url, "short-lived")
    assert registry.check("files").ok
    server.stop()

    email = make_email()
    attach(email, "contract.pdf")
    said, action = execute(upload(email))
    assert (said, action.status) == ("failed", ActionStatus.FAILED)
    assert action.last_error.startswith(
        f"Storage failed storing uploads/{action.pk}/contract.pdf: EndpointConnectionError"
    )
    assert Circuit.objects.get(name="files").failures == 1
    health = registry.check("files")
    assert (health.ok, health.backend) == (False, "s3")
    assert health.detail.startswith("Bucket short-lived cannot be reached: EndpointConnectionError")
    assert "mailroom-test-secret" not in health.detail + action.last_error


def test_a_missing_bucket_is_a_permanent_error(s3_server, settings, make_email, media):
    use_s3(settings, s3_server.url, "no-such-bucket")
    email = make_email()
    contract = attach(email, "contract.pdf")
    with pytest.raises(IntegrationError, match="NoSuchBucket") as failure:
        file_backend().store("uploads/x/contract.pdf", contract.file)
    assert failure.value.permanent
    health = registry.check("files")
    assert (health.ok, health.detail) == (False, "Bucket no-such-bucket answered 404: Not Found")
