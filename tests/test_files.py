"""upload_file on the filesystem: copies under MEDIA_ROOT, refusals with reasons, idempotency, undo, health.

The handler is called as the executor calls it, and through the executor
itself (queue_action, run_action, undo_action) where the recorded outcome
matters. The files are real ones built in tests/test_files_sniff.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from actions.executor import queue_action, run_action, undo_action
from actions.handlers import ActionFailed
from actions.models import Action, ActionStatus, Attachment, Email
from actions.proposals import propose_action
from integrations import registry
from integrations.errors import IntegrationError
from integrations.files import FileStore
from tests.test_files_sniff import CSV, PDF, docm, elf, png, windows_exe
from tests.test_handlers_local import run, undo

PNG = png()


def attach(email: Email, filename: str, content: bytes = PDF, content_type: str = "application/pdf") -> Attachment:
    """An attachment of `email` with this content, kept in media (MEDIA_ROOT: the test's `media` folder)."""
    return Attachment.objects.create(
        email=email,
        filename=filename,
        content_type=content_type,
        size=len(content),
        file=ContentFile(content, name="part.bin"),
    )


def upload(email: Email, **params) -> Action:
    return propose_action("upload_file", email=email, params=params)


def execute(action: Action) -> tuple[str, Action]:
    """Queue and run the action as a worker does; what run_action said, and the action as recorded."""
    queue_action(action, actor="test")
    said = run_action(action.pk)
    return said, Action.objects.get(pk=action.pk)


def stored_files(media: Path) -> list[str]:
    return sorted(str(path.relative_to(media)) for path in (media / "uploads").rglob("*") if path.is_file())


def test_every_attachment_is_stored_under_the_action_id(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    attach(email, "photo.png", PNG, "image/png")
    action = upload(email)
    outcome = run(action)
    assert stored_files(media) == [f"uploads/{action.pk}/contract.pdf", f"uploads/{action.pk}/photo.png"]
    assert (media / f"uploads/{action.pk}/contract.pdf").read_bytes() == PDF
    first, second = outcome.result["files"]
    assert (first["url"], first["size"], first["type"]) == (
        f"/media/uploads/{action.pk}/contract.pdf",
        len(PDF),
        "application/pdf",
    )
    assert second["type"] == "image/png"
    assert outcome.result["refused"] == []
    assert outcome.undo_data["paths"] == [f"uploads/{action.pk}/contract.pdf", f"uploads/{action.pk}/photo.png"]


def test_only_the_attachments_named_go_to_the_folder_named(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    photo = attach(email, "photo.png", PNG, "image/png")
    run(upload(email, attachment_ids=[photo.pk], folder="customers/acme"))
    assert stored_files(media) == ["uploads/customers/acme/photo.png"]


def test_uploading_twice_stores_each_file_once(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    attach(email, "contract.pdf", PDF + b"% another contract\n")
    action = upload(email)
    first, second = run(action), run(action)
    assert len(stored_files(media)) == 2
    assert first.undo_data == second.undo_data
    assert [f["already_stored"] for f in second.result["files"]] == [True, True]


def test_two_attachments_with_one_name_are_both_kept(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    other = attach(email, "contract.pdf", PDF + b"% another contract\n")
    action = upload(email)
    run(action)
    assert stored_files(media) == [f"uploads/{action.pk}/contract-{other.pk}.pdf", f"uploads/{action.pk}/contract.pdf"]


@pytest.mark.security
def test_a_file_name_from_the_email_cannot_leave_the_folder(make_email, media):
    email = make_email()
    attach(email, "../../../settings.pdf")
    attach(email, "..\\..\\evil.pdf")
    action = upload(email)
    run(action)
    assert stored_files(media) == [f"uploads/{action.pk}/evil.pdf", f"uploads/{action.pk}/settings.pdf"]


@pytest.mark.security
def test_refused_files_are_listed_with_their_reasons_and_the_others_are_stored(make_email, media):
    email = make_email()
    disguised = attach(email, "report.pdf", windows_exe(), "application/pdf")
    attach(email, "orders.csv", CSV, "text/csv")
    attach(email, "photo.png", PNG, "image/png")
    said, action = execute(upload(email))
    assert said == "succeeded"
    assert stored_files(media) == [f"uploads/{action.pk}/orders.csv", f"uploads/{action.pk}/photo.png"]
    assert action.result["refused"] == [
        {
            "attachment_id": disguised.pk,
            "filename": "report.pdf",
            "reason": "report.pdf is a Windows executable (MZ/PE header), which is never uploaded",
        }
    ]
    # Nothing is lost: the refused attachment is still on its email, content and all.
    disguised.refresh_from_db()
    assert disguised.email_id == email.pk and disguised.file.read() == windows_exe()


def test_when_every_file_is_refused_the_action_fails_for_good_with_the_reasons(make_email, media):
    email = make_email()
    attach(email, "invoice.docx", docm(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    attach(email, "tool", elf())
    said, action = execute(upload(email))
    assert (said, action.status) == ("dead", ActionStatus.DEAD)
    assert action.last_error == (
        "Not uploaded: invoice.docx is a macro-enabled Office document (it contains vbaProject.bin), which is never "
        "uploaded; tool is a Linux/Unix executable (ELF), which is never uploaded."
    )
    assert not (media / "uploads").exists()
    assert email.attachments.count() == 2


@pytest.mark.security
def test_a_file_over_the_size_limit_is_refused_without_being_read(make_email, media):
    io_counters = Path("/proc/self/io")
    if not io_counters.exists():
        pytest.skip("Counting the bytes a process reads needs Linux's /proc/self/io.")
    # 512 MiB on paper, nothing on disk (a sparse file): reading it would count, stat does not.
    huge = media / "attachments" / "huge.pdf"
    huge.parent.mkdir()
    with huge.open("wb") as file:
        file.write(PDF)
        file.truncate(512 * 1024 * 1024)
    email = make_email()
    Attachment.objects.create(
        email=email, filename="huge.pdf", content_type="application/pdf", file="attachments/huge.pdf"
    )

    def bytes_read() -> int:
        return int(re.search(r"rchar: (\d+)", io_counters.read_text()).group(1))

    before = bytes_read()
    with pytest.raises(ActionFailed, match=re.escape("huge.pdf is 512.0\xa0MB, over the upload limit of 25.0\xa0MB")):
        run(upload(email))
    assert bytes_read() - before < 4 * 1024 * 1024


def test_a_storage_failure_is_transient_and_takes_back_what_the_attempt_stored(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    attach(email, "photo.png", PNG, "image/png")
    action = upload(email)
    # Something that is no file sits where the second copy goes: the storage cannot read it.
    (media / f"uploads/{action.pk}/photo.png").mkdir(parents=True)
    with pytest.raises(IntegrationError, match=f"Storage failed storing uploads/{action.pk}/photo.png") as failure:
        run(action)
    assert not failure.value.permanent
    assert stored_files(media) == []


def test_undoing_an_upload_deletes_the_copies_it_made_and_only_those(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    attach(email, "photo.png", PNG, "image/png")
    attach(email, "orders.csv", CSV, "text/csv")
    action = upload(email)
    outcome = run(action)
    (media / f"uploads/{action.pk}/photo.png").unlink()
    (media / f"uploads/{action.pk}/orders.csv").write_bytes(b"someone else's,file\n1,2\n")
    details = undo(action, outcome)
    assert details == {
        "deleted": [f"uploads/{action.pk}/contract.pdf"],
        "already_gone": [f"uploads/{action.pk}/photo.png"],
        "changed_since": [f"uploads/{action.pk}/orders.csv"],
    }
    assert stored_files(media) == [f"uploads/{action.pk}/orders.csv"]
    # The email's own attachments are untouched.
    assert all(attachment.file.storage.exists(attachment.file.name) for attachment in email.attachments.all())


def test_undo_keeps_an_identical_file_another_action_stored_in_a_shared_folder(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    first, second = upload(email, folder="contracts"), upload(email, folder="contracts")
    kept = run(first)
    outcome = run(second)
    assert outcome.result["files"][0]["already_stored"] is True
    assert undo(second, outcome) == {"deleted": [], "already_gone": [], "changed_since": []}
    assert stored_files(media) == ["uploads/contracts/contract.pdf"]
    assert undo(first, kept)["deleted"] == ["uploads/contracts/contract.pdf"]


def test_an_upload_runs_and_is_undone_through_the_executor(make_email, media):
    email = make_email()
    attach(email, "contract.pdf")
    said, action = execute(upload(email))
    assert said == "succeeded"
    assert [f["path"] for f in action.result["files"]] == [f"uploads/{action.pk}/contract.pdf"]
    undo_action(action, actor="test")
    action.refresh_from_db()
    assert (action.status, stored_files(media)) == (ActionStatus.UNDONE, [])


def test_the_files_capability_is_the_filesystem_and_healthy_when_its_folder_is_writable(media):
    backend = registry.backend("files")
    assert isinstance(backend, FileStore) and (backend.capability, backend.name) == ("files", "filesystem")
    health = registry.check("files")
    assert (health.ok, health.backend, health.detail) == (True, "filesystem", f"{media} is writable.")


def test_the_filesystem_is_unhealthy_when_its_folder_is_a_file(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.write_text("not a folder")
    health = registry.check("files")
    assert (health.ok, health.detail) == (False, f"{settings.MEDIA_ROOT} is not a folder.")
