"""Structured logs: one JSON object per line, with the request id and the action id, secrets and addresses masked.

Lines are read from the console handler LOGGING configures (its stream
swapped for a buffer), so the filters and formatters under test are the ones
settings wire in.
"""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
from django.urls import reverse

from actions import handlers
from actions.executor import queue_action, run_action
from actions.handlers.tasks import CreateTask
from observability import context
from observability.logs import JsonFormatter
from observability.redact import redact, redact_text

logger = logging.getLogger("mailroom.test")


@pytest.fixture
def console():
    """The configured console handler, writing JSON into a buffer for the test."""
    handler = next(h for h in logging.getLogger().handlers if h.name == "console")
    formatter = handler.formatter
    handler.setStream(io.StringIO())
    handler.setFormatter(JsonFormatter())
    yield handler
    handler.setStream(None)  # back to whatever sys.stderr is
    handler.setFormatter(formatter)


def lines(handler: logging.StreamHandler) -> list[dict]:
    return [json.loads(line) for line in handler.stream.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_the_fields_log_collectors_need(console):
    logger.warning("Disk at %d%%", 93, extra={"mount": "/var"})
    [line] = lines(console)
    assert line["message"] == "Disk at 93%"
    assert (line["level"], line["logger"], line["mount"]) == ("WARNING", "mailroom.test", "/var")
    assert (line["request_id"], line["action_id"]) == (None, None)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", line["time"])


def test_a_tracebacks_lines_stay_in_one_json_line(console):
    try:
        raise ValueError("password=hunter2 was refused")
    except ValueError:
        logger.exception("Login failed")
    [line] = lines(console)
    assert "ValueError: password=******** was refused" in line["exception"]
    assert "hunter2" not in console.stream.getvalue()


def test_a_requests_lines_carry_its_request_id_which_the_response_returns(client, db, console):
    response = client.get("/no-such-page/", HTTP_X_REQUEST_ID="lb-4f9c2a77e1")
    [line] = [line for line in lines(console) if line["logger"] == "django.request"]
    assert response.status_code == 404
    assert response["X-Request-ID"] == "lb-4f9c2a77e1"
    assert (line["message"], line["request_id"]) == ("Not Found: /no-such-page/", "lb-4f9c2a77e1")


def test_an_unsafe_request_id_is_replaced_by_a_new_one(client, db):
    forged = "abc\n2031-01-01 INFO forged line"
    given = client.get(reverse("healthz"), HTTP_X_REQUEST_ID=forged)["X-Request-ID"]
    made = client.get(reverse("healthz"))["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", given) and re.fullmatch(r"[0-9a-f]{32}", made)
    assert given != made


class LoggingCreateTask(CreateTask):
    """Creates the task as usual, saying so in the log as an integration backend would."""

    def execute(self, action, params):
        logging.getLogger("integrations.tasks").info("Creating %r", params.title)
        return super().execute(action, params)


def test_an_action_runs_lines_carry_its_action_id(make_action, console, monkeypatch):
    handlers._load()
    monkeypatch.setitem(handlers._REGISTRY, "create_task", LoggingCreateTask())
    action = queue_action(make_action("create_task"), actor="test")
    assert run_action(action.pk) == "succeeded"
    inside, done = (line for line in lines(console) if line["logger"] in {"integrations.tasks", "mailroom.actions"})
    assert (inside["message"], inside["action_id"]) == ("Creating 'Call the customer back'", action.pk)
    assert (done["message"], done["action_id"], done["outcome"]) == (
        f"Action {action.pk}: succeeded",
        action.pk,
        "succeeded",
    )
    assert done["duration"] >= 0
    logger.info("after the run")
    assert lines(console)[-1]["action_id"] is None


def test_secrets_and_addresses_are_masked_in_messages_and_extra_fields(console):
    logger.info(
        "Calling https://api.example.com/?api_key=abc123&page=2 with Authorization: Bearer eyJhbGciOi.x for "
        "jane.doe@customer.example",
        extra={"password": "hunter2", "headers": {"X-Api-Key": "k-99", "Accept": "json"}, "to": ["bob@acme.example"]},
    )
    [line] = lines(console)
    assert line["message"] == (
        "Calling https://api.example.com/?api_key=********&page=2 with Authorization: ******** "
        "for j***@customer.example"
    )
    assert line["password"] == "********"
    assert line["headers"] == {"X-Api-Key": "********", "Accept": "json"}
    assert line["to"] == ["b***@acme.example"]
    for secret in ("abc123", "eyJhbGciOi", "hunter2", "k-99", "jane.doe", "bob@"):
        assert secret not in console.stream.getvalue()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("token=abc", "token=********"),
        ('{"client_secret": "s3cr3t"}', '{"client_secret": "********"}'),
        ("license_key: L-123", "license_key: ********"),
        ("Authorization: Token 0123456789abcdef0123456789abcdef01234567", "Authorization: ********"),
        ("OPENAI key sk-proj-abcdefgh1234", "OPENAI key ********"),
        ("tokens_used=512 author=dana", "tokens_used=512 author=dana"),
        ("Reply to Jane <jane@example.com>", "Reply to Jane <j***@example.com>"),
    ],
)
def test_what_looks_secret_is_masked_and_the_rest_is_kept(text, masked):
    assert redact_text(text) == masked


def test_the_text_format_names_the_request_and_action(console, settings):
    console.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["text"]["format"]))
    with context.bound(context.request_id, "req-1234abcd"), context.bound(context.action_id, 7):
        logger.info("hello")
    assert console.stream.getvalue().endswith(" INFO mailroom.test [request_id=req-1234abcd action_id=7]: hello\n")


def test_nested_extra_values_keep_their_types(console):
    assert redact({"attempts": 3, "ok": True, "ratio": 0.5, "none": None}) == {
        "attempts": 3,
        "ok": True,
        "ratio": 0.5,
        "none": None,
    }


def test_lines_after_a_request_carry_no_request_id(client, db, console):
    client.get(reverse("healthz"), HTTP_X_REQUEST_ID="lb-4f9c2a77e1")
    logger.info("between requests")
    assert lines(console)[-1]["request_id"] is None
