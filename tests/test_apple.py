"""Apple Mail, Calendar and Reminders: scripts no value can break out of, the runner's errors, and life off macOS.

osascript cannot run on the Linux machines these tests run on, so Mail,
Calendar and Reminders are not exercised here. What is tested: every
generated script, read back by a small AppleScript tokenizer (tests/applescript.py);
the runner, against a stand-in executable (see fake_osascript); and the
backends' behaviour off macOS.
"""

from __future__ import annotations

import importlib
import stat
import sys
from datetime import UTC, datetime, timedelta
from email.mime.application import MIMEApplication
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.mail import EmailMessage, get_connection

from integrations import registry
from integrations.apple import AppleCalendar, AppleMailBackend, AppleMailbox, AppleReminders, osascript, scripts
from integrations.apple.mail import mail_message_id
from integrations.apple.osascript import date_expression, quote, run_script
from integrations.calendar import Meeting, Reminder
from integrations.errors import IntegrationError, Unavailable
from tests.applescript import Token, as_applescript_keeps, literals, skeleton, tokenize

# --- The escaping function ----------------------------------------------------

HOSTILE = {
    "quotes": 'He said "hello" and "" twice',
    "backslashes": "C:\\temp\\ and a trailing backslash \\",
    "shell_command": '" & (do shell script "rm -rf ~") & "',
    "escaped_quit": '\\" & quit & \\"',
    "lone_quote": '"',
    "lone_backslash": "\\",
    "line_breaks": 'first\r\nsecond\nthird\r"\n& quit\n\tindented',
    "controls": "nul\x00 bell\x07 backspace\x08 vt\x0b ff\x0c esc\x1b del\x7f csi\x9b nel\x85 ls\u2028 ps\u2029",
    "comments_and_identifiers": "-- a comment (* a block *) # a hash |pipe| «event sysodlog» end tell",
    "unicode": "Grüße 👋🏽 日本語 “curly” \u2018single\u2019 «chevrons» \u202eevil\u202c ﬁ \U0001f600",
    "long": ('A "long" line \\ with & quit & and\r\n' * 5000),
}


def test_every_code_point_survives_a_literal_as_documented():
    for first in range(0, 0x110000, 0x10000):
        text = "".join(chr(code) for code in range(first, first + 0x10000))
        tokens = tokenize(quote(text))
        assert [token.kind for token in tokens] == ["string"]
        assert tokens[0].value == as_applescript_keeps(text)


@pytest.mark.parametrize("name", HOSTILE)
def test_a_literal_is_one_line_of_printable_text(name):
    literal = quote(HOSTILE[name])
    assert literal.splitlines() == [literal]
    assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F for char in literal)
    # Inside, every quote is escaped: the only way out is the closing quote.
    assert tokenize(literal) == [Token("string", literal, as_applescript_keeps(HOSTILE[name]))]


# --- Every script, with hostile values in every field -------------------------

START = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)


def _field(name: str, kind: str, value: str):
    return [f"{name}-1|{value}", f"{name}-2|{value}"] if kind == "list" else f"{name}|{value}"


def _save_event(*, calendar, uid, summary, location, description, attendees, start, end):
    """scripts.save_event with each of the meeting's fields given on its own."""
    meeting = Meeting(
        uid=uid,
        title=summary,
        start=start,
        end=end,
        organizer="alice@acme.example",
        attendees=tuple(attendees),
        location=location,
        description=description,
    )
    return scripts.save_event(calendar=calendar, meeting=meeting)


def _save_reminder(*, reminders_list, uid, name, body, due):
    """scripts.save_reminder with each of the reminder's fields given on its own."""
    reminder = Reminder(uid=uid, title=name, due=due, description=body)
    return scripts.save_reminder(reminders_list=reminders_list, reminder=reminder)


# builder -> {argument: "text" or "list"}; dates are the same for every run, as in the skeleton.
BUILDERS = {
    "send_message": (
        scripts.send_message,
        {"subject": "text", "content": "text", "sender": "text", "account": "text"}
        | {"to": "list", "cc": "list", "bcc": "list", "attachments": "list"},
        {},
    ),
    "archive_message": (scripts.archive_message, {"message_id": "text", "account": "text", "archive": "text"}, {}),
    "restore_message": (
        scripts.restore_message,
        {"message_id": "text", "account": "text", "archive": "text", "mailbox": "text"},
        {},
    ),
    "save_event": (
        _save_event,
        {"calendar": "text", "uid": "text", "summary": "text", "location": "text", "description": "text"}
        | {"attendees": "list"},
        {"start": START, "end": START + timedelta(hours=1)},
    ),
    "delete_event": (scripts.delete_event, {"calendar": "text", "uid": "text"}, {}),
    "save_reminder": (
        _save_reminder,
        {"reminders_list": "text", "uid": "text", "name": "text", "body": "text"},
        {"due": START},
    ),
    "delete_reminder": (scripts.delete_reminder, {"reminders_list": "text", "uid": "text"}, {}),
    "mail_health": (scripts.mail_health, {"account": "text"}, {}),
    "calendar_health": (scripts.calendar_health, {"calendar": "text"}, {}),
    "reminders_health": (scripts.reminders_health, {"reminders_list": "text"}, {}),
}


def _build(builder: str, value: str) -> tuple[str, dict]:
    function, fields, fixed = BUILDERS[builder]
    arguments = {name: _field(name, kind, value) for name, kind in fields.items()}
    return function(**arguments, **fixed), arguments


def _expected(benign_literal: str, benign: dict, hostile: dict) -> str:
    """What the literal that holds `benign_literal` must hold when the hostile values are given instead."""
    if benign_literal == scripts.event_marker(benign.get("uid", "")):
        # The event marker URL-quotes the UID; any other derived literal embeds the value as it is.
        return scripts.event_marker(hostile["uid"])
    expected = benign_literal
    for name, value in benign.items():
        pairs = zip(value, hostile[name], strict=True) if isinstance(value, list) else [(value, hostile[name])]
        for benign_value, hostile_value in pairs:
            expected = expected.replace(benign_value, hostile_value)
    return as_applescript_keeps(expected)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("name", HOSTILE)
def test_no_value_adds_code_to_a_script(builder, name):
    benign_script, benign = _build(builder, "benign")
    hostile_script, hostile = _build(builder, HOSTILE[name])

    assert skeleton(hostile_script) == skeleton(benign_script)
    benign_literals, hostile_literals = literals(benign_script), literals(hostile_script)
    assert len(hostile_literals) == len(benign_literals)
    for benign_literal, hostile_literal in zip(benign_literals, hostile_literals, strict=True):
        assert hostile_literal == _expected(benign_literal, benign, hostile)
    # Every value given reached the script whole: in a literal of its own, inside one (notes), or as the marker.
    for value in hostile.values():
        for text in value if isinstance(value, list) else [value]:
            kept = as_applescript_keeps(text)
            assert any(kept in literal or literal == scripts.event_marker(text) for literal in hostile_literals)
    assert hostile_script.count("\n") == benign_script.count("\n")
    assert "\r" not in hostile_script and "\x00" not in hostile_script


SEND_COMMENT = ["-- Mail adds attachments asynchronously; sending at once can drop them."]


def test_the_templates_hold_no_comment_but_the_one_written_there():
    for builder in BUILDERS:
        script, _ = _build(builder, "benign")
        comments = [token.raw for token in tokenize(script) if token.kind == "comment"]
        assert comments == (SEND_COMMENT if builder == "send_message" else [])


def test_dates_are_numbers_in_the_macs_own_time_zone_across_a_dst_change():
    berlin = ZoneInfo("Europe/Berlin")
    # 00:30 UTC is 01:30 in Berlin (winter time); an hour later the clocks have gone forward to 03:30.
    assert date_expression(START, berlin) == "my makeDate(2025, 3, 30, 5400)"
    assert date_expression(START + timedelta(hours=1), berlin) == "my makeDate(2025, 3, 30, 12600)"
    assert date_expression(datetime(2025, 1, 1, 9, 15, 7, tzinfo=ZoneInfo("America/New_York")), berlin) == (
        "my makeDate(2025, 1, 1, 54907)"
    )


def test_the_send_script_carries_the_message_and_its_attachments_as_files(settings, tmp_path):
    settings.APPLE_MAIL_ACCOUNT = HOSTILE["shell_command"]
    message = EmailMessage(
        subject=HOSTILE["line_breaks"],
        body=HOSTILE["escaped_quit"],
        from_email="Support <support@acme.example>",
        to=['"Quote, \\" & quit" <alice@acme.example>', "bob@acme.example"],
        cc=["charlie@acme.example"],
        bcc=["audit@acme.example"],
    )
    message.attach('../../evil" & quit & ".txt', "first", "text/plain")
    message.attach('../../evil" & quit & ".txt', b"\x00second", "application/octet-stream")
    message.attach(MIMEApplication(b"%PDF-1.4", Name="report.pdf"))

    script = AppleMailBackend().script_for(message, tmp_path)

    values = literals(script)
    assert values[:8] == [
        as_applescript_keeps(HOSTILE["line_breaks"]),  # subject
        HOSTILE["escaped_quit"],  # body
        "alice@acme.example",  # to: bare addresses, whatever the display name holds
        "bob@acme.example",
        "charlie@acme.example",  # cc
        "audit@acme.example",  # bcc
        "Support <support@acme.example>",  # sender
        HOSTILE["shell_command"],  # account
    ]
    files = [Path(path) for path in values[8:11]]
    assert [file.read_bytes() for file in files] == [b"first", b"\x00second", b"%PDF-1.4"]
    assert all(file.parent.parent == tmp_path for file in files)
    assert [file.name for file in files] == ['evil" & quit & ".txt', 'evil" & quit & ".txt', "report.pdf"]


def test_mail_finds_a_message_by_its_message_id_without_angle_brackets():
    assert mail_message_id(" <abc.123@customer.example> ") == "abc.123@customer.example"
    with pytest.raises(IntegrationError) as raised:
        mail_message_id("<>")
    assert raised.value.permanent


# --- Off macOS ----------------------------------------------------------------

off_macos = pytest.mark.skipif(sys.platform == "darwin", reason="describes the backends where osascript cannot run")


def _backends():
    return {
        "Apple Mail": [AppleMailBackend(), AppleMailbox()],
        "Apple Calendar": [AppleCalendar()],
        "Apple Reminders": [AppleReminders()],
    }


@off_macos
def test_importing_integrations_apple_works_off_macos():
    module = importlib.reload(importlib.import_module("integrations.apple"))
    assert module.AppleMailbox().name == "apple"


@off_macos
def test_every_backend_is_unhealthy_off_macos_and_says_why():
    for app, backends in _backends().items():
        for backend in backends:
            health = backend.health()
            assert not health.ok
            assert health.detail == f"{app} works only on macOS: osascript was not found."


@off_macos
def test_the_health_view_reports_the_apple_backends_unavailable(settings):
    settings.MAILBOX_BACKEND = settings.CALENDAR_BACKEND = settings.REMINDER_BACKEND = "apple"
    assert registry.check("mailbox").detail == "Apple Mail works only on macOS: osascript was not found."
    assert registry.check("calendar").detail == "Apple Calendar works only on macOS: osascript was not found."
    assert registry.check("reminders").detail == "Apple Reminders works only on macOS: osascript was not found."


@off_macos
def test_every_operation_raises_unavailable_off_macos_even_with_an_osascript_at_hand(make_email, monkeypatch, tmp_path):
    # An executable where osascript would be: still not macOS, so it must never run.
    monkeypatch.setattr(osascript, "OSASCRIPT", str(fake_osascript(tmp_path, stdout="ok")))
    email = make_email()
    meeting = Meeting("m-1", "Review", START, START + timedelta(hours=1), "alice@acme.example", ("bob@acme.example",))
    reminder = Reminder("r-1", "Call back", START)
    operations = {
        "Apple Mail": [
            lambda: AppleMailbox().archive(email),
            lambda: AppleMailbox().restore(email, {"account": "Work", "mailbox": "INBOX"}),
        ],
        "Apple Calendar": [lambda: AppleCalendar().save_event(meeting), lambda: AppleCalendar().delete_event("m-1")],
        "Apple Reminders": [
            lambda: AppleReminders().save_reminder(reminder),
            lambda: AppleReminders().delete_reminder("r-1"),
        ],
    }
    for app, calls in operations.items():
        for call in calls:
            with pytest.raises(Unavailable) as raised:
                call()
            assert str(raised.value) == f"{app} works only on macOS: osascript was not found."
            assert raised.value.permanent
    assert not (tmp_path / "stdin.txt").exists()


@off_macos
def test_sending_through_apple_mail_off_macos_fails_clearly_unless_told_to_fail_silently(settings):
    settings.EMAIL_BACKEND = "integrations.apple.AppleMailBackend"
    message = EmailMessage("Hello", "Body", "support@acme.example", ["alice@acme.example"])
    with pytest.raises(Unavailable, match=r"^Apple Mail works only on macOS: osascript was not found\.$"):
        get_connection().send_messages([message])
    assert get_connection(fail_silently=True).send_messages([message]) == 0
    assert mail.send_mail("Hi", "Body", None, ["bob@acme.example"], fail_silently=True) == 0
    with pytest.raises(Unavailable):
        mail.send_mail("Hi", "Body", None, ["bob@acme.example"])


# --- The runner -----------------------------------------------------------------


def fake_osascript(folder: Path, *, stdout: str = "", stderr: str = "", status: int = 0, sleep: float = 0) -> Path:
    """An executable standing in for /usr/bin/osascript, which cannot run on Linux (the only stand-in here).

    It records its arguments and stdin next to itself, prints the given
    output and error text as osascript would, and exits with `status`.
    """
    (folder / "stdout.txt").write_text(stdout)
    (folder / "stderr.txt").write_text(stderr)
    path = folder / "osascript"
    path.write_text(
        "#!/bin/sh\n"
        'here=$(dirname "$0")\n'
        'printf "%s\\n" "$@" > "$here/argv.txt"\n'
        'cat > "$here/stdin.txt"\n'
        f"{f'exec sleep {sleep}' if sleep else ':'}\n"
        'cat "$here/stdout.txt"\n'
        'cat "$here/stderr.txt" >&2\n'
        f"exit {status}\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_script_goes_to_osascript_on_stdin_and_never_in_its_arguments(tmp_path):
    script, _ = _build("send_message", HOSTILE["unicode"])
    executable = fake_osascript(tmp_path, stdout="sent\n")

    assert run_script(script, osascript=str(executable), timeout=10) == "sent"
    assert (tmp_path / "argv.txt").read_text() == "-\n"
    assert (tmp_path / "stdin.txt").read_bytes() == script.encode("utf-8")


@pytest.mark.parametrize(
    "stderr",
    [
        "0:52: execution error: Not authorized to send Apple events to Mail. (-1743)",
        "45:80: execution error: Calendar got an error: Not authorised to send Apple events. (-1744)",
    ],
)
def test_not_being_allowed_to_control_the_app_is_permanent_and_says_how_to_allow_it(tmp_path, stderr):
    with pytest.raises(IntegrationError) as raised:
        run_script('return "ok"', osascript=str(fake_osascript(tmp_path, stderr=stderr + "\n", status=1)))
    assert raised.value.permanent
    assert "Not authori" in str(raised.value)
    assert "Privacy & Security > Automation" in str(raised.value)


@pytest.mark.parametrize(
    ("stderr", "permanent"),
    [
        ("12:40: execution error: Mail got an error: AppleEvent timed out. (-1712)", False),
        ("0:30: execution error: Reminders got an error: Application isn't running. (-600)", False),
        ('90:140: execution error: Mail got an error: Can\'t get mailbox "Archive". (-1728)', True),
        ("300:400: execution error: No message with this Message-ID is in the inbox. (4404)", True),
        ("0:5: syntax error: Expected end of line but found identifier. (-2741)", True),
        ("osascript: crashed", False),
    ],
)
def test_script_errors_are_transient_only_when_trying_again_could_help(tmp_path, stderr, permanent):
    with pytest.raises(IntegrationError) as raised:
        run_script('return "ok"', osascript=str(fake_osascript(tmp_path, stderr=stderr, status=1)))
    assert raised.value.permanent is permanent
    assert "execution error" not in str(raised.value)


def test_osascript_that_does_not_finish_in_time_is_transient(tmp_path):
    with pytest.raises(IntegrationError, match=r"within 0\.5 s") as raised:
        run_script('return "ok"', osascript=str(fake_osascript(tmp_path, sleep=10)), timeout=0.5)
    assert not raised.value.permanent


def test_a_missing_osascript_is_unavailable(tmp_path):
    with pytest.raises(Unavailable, match="works only on macOS: osascript was not found"):
        run_script('return "ok"', osascript=str(tmp_path / "nowhere" / "osascript"), timeout=5)
