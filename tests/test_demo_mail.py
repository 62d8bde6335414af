"""The demo mail generator: real RFC 5322 bytes, every kind of mail, repeatable, and read as intended;
and demo_stream, which keeps it arriving through the real intake until it is told to stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from itertools import islice

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.html import strip_tags

from actions.demo_mail import CATEGORY_WEIGHTS, MAILBOX, STREAM_ROUND, DemoMessage, generate, generate_messages, stream
from actions.handlers import validation_errors
from actions.management.base import CANNOT_START
from actions.models import Email, EmailSource, ProcessingRun, RunStatus
from actions.pipeline import process_runs
from integrations.llm.base import EmailFacts
from integrations.llm.local import LocalRulesBackend
from tests import processes

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)


def automated(message: EmailMessage) -> str:
    """A stand-in for intake's detection of machine mail, enough for the demo's plain signals."""
    if message.get_content_type() == "multipart/report" or str(message.get("Return-Path", "")).strip() == "<>":
        return "bounce"
    if str(message.get("Auto-Submitted", "no")).lower() != "no":
        return "auto_reply"
    if message.get("List-Id"):
        return "list"
    return ""


def facts_of(raw: bytes) -> EmailFacts:
    """The email as a backend reads it, taken from the raw bytes with the standard library."""
    message = parse(raw)
    sender = message["From"].addresses[0]
    part = message.get_body(("plain", "html"))
    body = part.get_content() if part is not None else ""
    if part is not None and part.get_content_subtype() == "html":
        body = strip_tags(body)
    return EmailFacts(
        id=None,
        mailbox=MAILBOX,
        from_address=sender.addr_spec,
        from_name=sender.display_name,
        to=tuple(address.addr_spec for address in message["To"].addresses),
        cc=tuple(address.addr_spec for address in message["Cc"].addresses) if message["Cc"] else (),
        subject=str(message["Subject"]),
        body=body,
        headers=tuple((name, str(value)) for name, value in message.items()),
        attachments=tuple(part.get_filename() or "" for part in message.iter_attachments()),
        automated=automated(message),
        received_at=message["Date"].datetime.isoformat(),
    )


@pytest.fixture(scope="module")
def batch() -> list[DemoMessage]:
    return generate(60, seed=7, now=NOW)


def of(batch: list[DemoMessage], category: str) -> list[EmailMessage]:
    return [parse(message.raw) for message in batch if message.category == category]


def test_every_message_parses_cleanly_with_the_standard_library(batch):
    for demo in batch:
        message = parse(demo.raw)
        assert all(not part.defects for part in message.walk()), demo.subject
        assert message["To"] == MAILBOX
        assert message["Subject"] == demo.subject
        assert message["From"].addresses[0].addr_spec
        assert message.get_body(("plain",)) is not None


def test_a_batch_of_60_has_every_category_weighted_towards_support(batch):
    counts = Counter(message.category for message in batch)
    assert set(counts) == set(CATEGORY_WEIGHTS)
    assert counts.most_common(1)[0][0] == "support"


def test_message_ids_are_unique_and_on_the_senders_domain(batch):
    ids = [message.message_id for message in batch]
    assert len(set(ids)) == len(ids)
    for demo in batch:
        message = parse(demo.raw)
        assert message["Message-ID"] == demo.message_id
        sender_domain = message["From"].addresses[0].domain
        assert demo.message_id.startswith("<") and demo.message_id.endswith(f"@{sender_domain}>")


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_mail():
    assert generate_messages(30, seed=1, now=NOW) == generate_messages(30, seed=1, now=NOW)
    assert generate_messages(30, seed=1, now=NOW) != generate_messages(30, seed=2, now=NOW)


def test_generate_messages_is_the_bytes_of_generate():
    assert generate_messages(12, seed=3, now=NOW) == [message.raw for message in generate(12, seed=3, now=NOW)]


def test_mail_arrived_over_the_last_hours_oldest_first(batch):
    dates = [parse(message.raw)["Date"].datetime for message in batch]
    assert dates == sorted(dates)
    assert all(NOW - timedelta(hours=8) <= date < NOW for date in dates)


@pytest.mark.parametrize("drawn", ["generated", "streamed"])
def test_replies_answer_earlier_messages_of_the_stream(batch, drawn):
    if drawn == "streamed":
        batch = list(islice(stream(seed=7), 60))
    seen: dict[str, DemoMessage] = {}
    replies = 0
    for demo in batch:
        message = parse(demo.raw)
        if demo.in_reply_to:
            replies += 1
            parent = seen[demo.in_reply_to]
            assert message["In-Reply-To"] == parent.message_id
            assert message["References"].split()[-1] == parent.message_id
            assert message["Subject"].startswith("Re: ")
            assert demo.category == parent.category
        seen[demo.message_id] = demo
    assert replies


def test_the_bounce_is_a_delivery_status_report_with_a_null_return_path(batch):
    [bounce] = of(batch, "bounce")
    assert bounce.get_content_type() == "multipart/report"
    assert bounce.get_param("report-type") == "delivery-status"
    assert bounce["Return-Path"] == "<>"
    assert [part.get_content_type() for part in bounce.iter_parts()] == [
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    ]


def test_newsletters_carry_list_headers(batch):
    newsletters = of(batch, "newsletter")
    assert newsletters
    for message in newsletters:
        assert message["List-Id"] and message["List-Unsubscribe"]
        assert message["Precedence"] == "bulk"
        assert message.get_body(("html",)) is not None


def test_auto_replies_say_they_are_automatic(batch):
    for message in of(batch, "auto_reply"):
        assert message["Auto-Submitted"] == "auto-replied"
        assert "out of the office" in message.get_body(("plain",)).get_content()


def test_some_mail_has_a_cc_an_html_part_or_an_attachment():
    messages = [parse(raw) for raw in generate_messages(120, seed=11, now=NOW)]
    assert any(message["Cc"] for message in messages)
    assert any(message.get_content_type() == "multipart/alternative" for message in messages)
    names = {part.get_filename() for message in messages for part in message.iter_attachments()}
    assert any(name and name.endswith(".pdf") for name in names)
    assert any(name and name.endswith(".csv") for name in names)


def test_every_address_is_under_the_example_domain():
    for raw in generate_messages(120, seed=5, now=NOW):
        message = parse(raw)
        for header in ("From", "To", "Cc"):
            for address in message[header].addresses if message[header] else ():
                assert address.domain.endswith(".example"), address


@pytest.mark.parametrize("seed", range(5))
def test_the_local_backend_reads_each_message_as_intended(settings, seed):
    settings.TIME_ZONE = "Europe/Berlin"
    backend = LocalRulesBackend(rules=[])
    for demo in generate(60, seed=seed, now=NOW):
        analysis = backend.analyze(facts_of(demo.raw))
        assert (analysis.category, analysis.priority) == (demo.category, demo.priority), demo.subject
        for action in analysis.actions:
            assert validation_errors(action.type, action.params) == [], (demo.subject, action)


# --- The stream: mail arriving live ---------------------------------------------------------------


def test_the_stream_brings_every_category_in_each_round_dated_as_drawn():
    drawn_from = timezone.now().replace(microsecond=0)
    messages = list(islice(stream(seed=4), 3 * STREAM_ROUND))
    for start in range(0, len(messages), STREAM_ROUND):
        assert {message.category for message in messages[start : start + STREAM_ROUND]} == set(CATEGORY_WEIGHTS)
    dates = [parse(message.raw)["Date"].datetime for message in messages]
    assert all(drawn_from <= date <= timezone.now() for date in dates)
    assert len({message.message_id for message in messages}) == len(messages)


def test_the_same_seed_streams_the_same_mail():
    def drawn(seed: int) -> list[tuple[str, str, str]]:
        return [(m.category, m.message_id, m.subject) for m in islice(stream(seed=seed), 40)]

    assert drawn(9) == drawn(9)
    assert drawn(9) != drawn(10)


def test_demo_stream_delivers_through_the_intake_and_queues_each_run(
    db, media, settings, monkeypatch, capsys, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr("actions.runlog.async_task", lambda func, *args, **kwargs: queued.append((func, args)))
    settings.PROCESS_ON_INTAKE = True
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_stream", every=0.01, count=4, seed=2)
    emails = Email.objects.filter(source=EmailSource.DEMO, mailbox=MAILBOX).order_by("pk")
    runs = list(ProcessingRun.objects.filter(email__in=emails).order_by("pk"))
    assert queued == [("actions.pipeline.process_run", (run.pk,)) for run in runs] and len(runs) == 4
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[1] for line in out[:4]] == [
        f"email #{email.pk} ({message.category}) from {email.from_name or email.from_address}: {email.subject}"
        for email, message in zip(emails, islice(stream(seed=2), 4), strict=True)
    ]
    assert out[4] == "Demo mail stopped after 4 message(s)."
    # A worker then takes each through the pipeline as it would real mail.
    assert process_runs(runs)["succeeded"] == 4
    assert set(ProcessingRun.objects.filter(pk__in=[run.pk for run in runs]).values_list("status", flat=True)) == {
        RunStatus.SUCCEEDED
    }


def test_demo_stream_refuses_a_pause_of_zero(db):
    with pytest.raises(CommandError, match="--every must be above 0") as refused:
        call_command("demo_stream", every=0)
    assert refused.value.returncode == CANNOT_START
    assert not Email.objects.exists()


@pytest.mark.slow
@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_demo_stream_stops_after_the_message_in_hand_when_asked(transactional_db, stop_with):
    process = subprocess.Popen(
        [sys.executable, "manage.py", "demo_stream", "--every", "0.2"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": processes.test_database_url(), "PROCESS_ON_INTAKE": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = process.stdout.readline()
        assert " email #" in first, first
        process.send_signal(stop_with)
        rest = process.communicate(timeout=30)[0].splitlines()
    finally:
        process.kill()
    assert process.returncode == 0
    delivered = 1 + sum(" email #" in line for line in rest)
    assert rest[-1] == f"Demo mail stopped after {delivered} message(s)."
    assert Email.objects.filter(source=EmailSource.DEMO).count() == delivered
