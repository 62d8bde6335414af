"""Storing raw mail: once per mailbox and Message-ID, threaded, flagged, quarantined with a reason, never crashing."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from actions.intake.store import ingest_message
from actions.models import (
    AuditEntry,
    Automated,
    Email,
    EmailSource,
    EmailStatus,
    ProcessingRun,
    RunStatus,
    StepName,
)
from tests.services import missing
from tests.test_parsing import CORPUS

MAILBOX = "support@acme.example"


def message(
    subject: str = "Where is my order?",
    *,
    sender: str = "Dana Customer <dana@customer.example>",
    message_id: str | None = "<order-1@customer.example>",
    body: str = "Hello, my order 1234 has not arrived yet.",
    headers: dict[str, str] | None = None,
    attachment: tuple[str, str, bytes] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = MAILBOX
    mail["Subject"] = subject
    mail["Date"] = "Fri, 20 Nov 2026 09:30:00 +0100"
    if message_id:
        mail["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        mail[name] = value
    mail.set_content(body)
    if attachment:
        name, kind, content = attachment
        maintype, subtype = kind.split("/")
        mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return mail.as_bytes()


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and not p.name.startswith("."))


pytestmark = pytest.mark.usefixtures("media")


def test_it_stores_a_message_with_its_parts_and_starts_a_run(db):
    raw = message(attachment=("invoice.pdf", "application/pdf", b"%PDF-1.4 fake"))
    result = ingest_message(raw, mailbox=MAILBOX, source=EmailSource.API)

    email = result.email
    assert result.created and not result.quarantined
    assert (email.from_name, email.from_address, email.subject) == (
        "Dana Customer",
        "dana@customer.example",
        "Where is my order?",
    )
    assert email.to == [MAILBOX]
    assert "order 1234" in email.text_body
    assert email.source == EmailSource.API and email.size == len(raw) and bytes(email.raw) == raw
    email.refresh_from_db()
    assert email.received_at.isoformat() == "2026-11-20T08:30:00+00:00"
    attachment = email.attachments.get()
    assert (attachment.filename, attachment.content_type, attachment.size) == ("invoice.pdf", "application/pdf", 13)
    assert attachment.file.read() == b"%PDF-1.4 fake"
    run = email.runs.get()
    assert run.status == RunStatus.PENDING
    intake = run.steps.get(name=StepName.INTAKE)
    assert intake.status == RunStatus.SUCCEEDED
    assert "Received by api" in intake.log[0]["message"]
    assert AuditEntry.objects.filter(event="email.received", target_id=str(email.pk)).exists()


def test_it_stores_the_same_message_once_per_mailbox(db):
    first = ingest_message(message(), mailbox=MAILBOX)
    again = ingest_message(message(), mailbox=MAILBOX)
    elsewhere = ingest_message(message(), mailbox="sales@acme.example")

    assert first.created and not again.created and elsewhere.created
    assert again.email.pk == first.email.pk
    assert Email.objects.filter(mailbox=MAILBOX).count() == 1
    assert ProcessingRun.objects.filter(email=first.email).count() == 1


def test_a_message_without_message_id_is_still_stored_once(db):
    raw = message(message_id=None)
    first, again = ingest_message(raw, mailbox=MAILBOX), ingest_message(raw, mailbox=MAILBOX)
    assert first.created and not again.created
    assert first.email.message_id.startswith("<sha256-") and first.email.message_id.endswith("@mailroom.invalid>")


def test_replies_are_linked_to_their_thread_in_either_order(db):
    reply = message(
        "Re: Where is my order?",
        message_id="<reply-1@acme.example>",
        headers={"In-Reply-To": "<order-1@customer.example>", "References": "<order-1@customer.example>"},
    )
    second = message(
        "Re: Re: Where is my order?",
        message_id="<reply-2@customer.example>",
        headers={"References": "<order-1@customer.example> <missing@x.example> <reply-1@acme.example>"},
    )
    # The reply arrives before the message it answers.
    early = ingest_message(reply, mailbox=MAILBOX).email
    original = ingest_message(message(), mailbox=MAILBOX).email
    late = ingest_message(second, mailbox=MAILBOX).email

    early.refresh_from_db()
    assert early.parent == original
    assert late.parent == early  # the latest of References that we have
    assert late.references == ["<order-1@customer.example>", "<missing@x.example>", "<reply-1@acme.example>"]


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "auto-replied", "Subject-Extra": "x"}, Automated.AUTO_REPLY),
        (
            {"List-Id": "<announce.lists.example>", "List-Unsubscribe": "<mailto:u@lists.example>"},
            Automated.MAILING_LIST,
        ),
    ],
)
def test_automated_mail_is_flagged_with_its_reason(db, headers, kind):
    email = ingest_message(message(headers=headers), mailbox=MAILBOX).email
    assert email.automated == kind
    assert email.status_reason
    assert "never answered automatically" in email.runs.get().steps.get(name=StepName.INTAKE).log[-1]["message"]


@pytest.mark.security
def test_what_is_not_mail_is_kept_raw_and_quarantined_with_its_reason(db):
    raw = b"\x00\x01\x02 this is not an email \xff\xfe"
    result = ingest_message(raw, mailbox=MAILBOX)

    email = result.email
    assert result.created and result.quarantined
    assert email.status == EmailStatus.QUARANTINED
    assert email.status_reason
    assert bytes(email.raw) == raw
    run = email.runs.get()
    assert run.status == RunStatus.FAILED and "Quarantined" in run.reason
    assert AuditEntry.objects.filter(event="email.quarantined", target_id=str(email.pk)).exists()
    # The same bytes again are the same quarantined message, not a second one.
    assert not ingest_message(raw, mailbox=MAILBOX).created


@pytest.mark.security
def test_a_message_without_a_sender_is_quarantined(db):
    raw = b"To: support@acme.example\r\nSubject: who am I\r\nMessage-ID: <anon@x.example>\r\n\r\nHello\r\n"
    email = ingest_message(raw, mailbox=MAILBOX).email
    assert email.status == EmailStatus.QUARANTINED
    assert "From" in email.status_reason
    assert email.message_id == "<anon@x.example>"


@pytest.mark.security
def test_an_oversized_message_is_quarantined_without_its_content(db, settings):
    settings.MAX_MESSAGE_BYTES = 2048
    raw = message(body="x" * 5000)
    result = ingest_message(raw, mailbox=MAILBOX)
    assert result.quarantined
    assert "over the limit of 2,048" in result.email.status_reason
    assert bytes(result.email.raw) == b""
    assert result.email.size == len(raw)


@pytest.mark.security
def test_text_the_databases_refuse_is_cleaned(db):
    raw = message(subject="Nul\x00 in subject", body="Body with a NUL \x00 inside")
    email = ingest_message(raw, mailbox=MAILBOX).email
    email.refresh_from_db()
    assert "\x00" not in email.subject and "\x00" not in email.text_body


def test_processing_on_intake_queues_the_run_after_commit(
    db, settings, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr("actions.runlog.async_task", lambda func, *args, **kwargs: queued.append((func, args)))
    settings.PROCESS_ON_INTAKE = True
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = ingest_message(message(), mailbox=MAILBOX).email.runs.get()
    assert queued == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert queued == [("actions.pipeline.process_run", (run.pk,))]


@pytest.mark.security
def test_every_corpus_message_is_stored_or_quarantined_with_a_reason(db):
    files = corpus_files()
    if not files:
        missing(f"the shared corpus is not at {CORPUS}")
    for path in files:
        result = ingest_message(path.read_bytes(), mailbox=MAILBOX)
        email = result.email
        if result.quarantined:
            assert email.status == EmailStatus.QUARANTINED and email.status_reason, path
        else:
            assert email.status == EmailStatus.RECEIVED, path
            assert email.from_address, path
    stored = Email.objects.exclude(status=EmailStatus.QUARANTINED).count()
    quarantined = Email.objects.filter(status=EmailStatus.QUARANTINED)
    print(f"\ncorpus: {len(files)} files, {stored} stored, {quarantined.count()} quarantined")
    for email in quarantined:
        print(f"  quarantined {email.message_id}: {email.status_reason}")
    # Some files in the corpus are the same message twice; every file still has its row.
    assert Email.objects.count() <= len(files)
    assert stored > len(files) * 0.8


# --- import_mail ---------------------------------------------------------------------


def test_import_mail_reads_files_folders_and_mbox_and_skips_what_it_has(db, tmp_path, capsys):
    folder = tmp_path / "mail"
    (folder / "nested").mkdir(parents=True)
    (folder / "one.eml").write_bytes(message(message_id="<one@x.example>"))
    (folder / "nested" / "two.eml").write_bytes(message(message_id="<two@x.example>"))
    (folder / "junk.eml").write_bytes(b"\x00\x01 not mail")
    mbox = tmp_path / "archive.mbox"
    mbox.write_bytes(
        b"".join(
            b"From someone@example Fri Nov 20 09:30:00 2026\n" + message(message_id=f"<m{n}@x.example>") + b"\n"
            for n in range(3)
        )
    )

    call_command("import_mail", str(folder), str(mbox), "--mailbox", "ops@acme.example", "--no-progress")
    out = capsys.readouterr().out
    assert "5 stored, 0 already stored, 1 quarantined, 0 unreadable into ops@acme.example" in out

    call_command("import_mail", str(folder), str(mbox), "--mailbox", "ops@acme.example", "--no-progress")
    assert "0 stored, 6 already stored" in capsys.readouterr().out
    assert Email.objects.filter(mailbox="ops@acme.example", source=EmailSource.IMPORT).count() == 6


def test_import_mail_says_which_path_is_missing_and_exits_2(db, tmp_path):
    with pytest.raises(CommandError) as raised:
        call_command("import_mail", str(tmp_path / "nowhere.eml"))
    assert raised.value.returncode == 2
    assert "nowhere.eml" in str(raised.value)
