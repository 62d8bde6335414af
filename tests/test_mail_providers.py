"""Mail out through web APIs (django-anymail): loopback Postmark and SendGrid APIs, and moto's Amazon SES.

The loopback APIs check each request against the shape the providers
document (path, key header, JSON fields) and answer as the services do,
errors included; moto's SES server keeps the raw MIME message it was given.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from icalendar import Calendar
from moto.server import ThreadedMotoServer

from integrations import calendar, outbox
from integrations.mail import mail_backend
from integrations.models import OutboxStatus
from tests.test_mail_out import (  # noqa: F401 - mail_settings is an autouse fixture
    MESSAGE_ID,
    THREAD,
    deliver_refused,
    invitation,
    mail_settings,
    store,
)

pytestmark = [
    pytest.mark.django_db,
    # Anymail still sends through SendGrid, but no longer tests against it (README says so).
    pytest.mark.filterwarnings("ignore:django-anymail has dropped official support for SendGrid"),
]


# --- Web APIs through django-anymail --------------------------------------------------------


@dataclass
class ApiRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ProviderAPI:
    """A loopback stand-in for a mail provider's send endpoint: checks each request's path, key and JSON fields."""

    def __init__(self, *, path: str, key_header: str, key_value: str, required: list[str], success: Answer) -> None:
        self.path, self.key_header, self.key_value = path, key_header, key_value
        self.required, self.success = required, success
        self.requests: list[ApiRequest] = []
        self.answers: list[Answer] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                request = ApiRequest("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                api.requests.append(request)
                answer = api.answer(request)
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in {"Content-Type": "application/json", **answer.headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, request: ApiRequest) -> Answer:
        if request.path != self.path:
            return Answer(404, {"Message": f"No route for {request.path}"})
        if request.headers.get(self.key_header.lower()) != self.key_value:
            return Answer(401, {"ErrorCode": 10, "errors": [{"message": "The provided authorization is invalid"}]})
        missing = [name for name in self.required if name not in request.body]
        if missing or request.headers.get("content-type", "").split(";")[0] != "application/json":
            return Answer(400, {"ErrorCode": 300, "Message": f"Invalid email request: missing {missing}"})
        return self.answers.pop(0) if self.answers else self.success

    def answer_next(self, status: int, body: Any = None, **headers: str) -> None:
        self.answers.append(Answer(status, body, headers))

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _postmark(settings) -> ProviderAPI:
    # https://postmarkapp.com/developer/api/email-api: POST /email with X-Postmark-Server-Token.
    api = ProviderAPI(
        path="/email",
        key_header="X-Postmark-Server-Token",
        key_value="postmark-token",
        required=["From", "To", "Subject", "TextBody"],
        success=Answer(200, {"To": "dana@customer.example", "SubmittedAt": "2031-03-04T10:00:00Z",
                             "MessageID": "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", "ErrorCode": 0, "Message": "OK"}),
    )  # fmt: skip
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "postmark-token", "POSTMARK_API_URL": api.url + "/"}
    return api


def _sendgrid(settings) -> ProviderAPI:
    # https://www.twilio.com/docs/sendgrid/api-reference/mail-send: POST /v3/mail/send, Bearer key, 202 and no body.
    api = ProviderAPI(
        path="/v3/mail/send",
        key_header="Authorization",
        key_value="Bearer sendgrid-key",
        required=["personalizations", "from", "subject", "content"],
        success=Answer(202),
    )
    settings.EMAIL_BACKEND = "anymail.backends.sendgrid.EmailBackend"
    settings.ANYMAIL = {"SENDGRID_API_KEY": "sendgrid-key", "SENDGRID_API_URL": api.url + "/v3/"}
    return api


@pytest.fixture(params=["postmark", "sendgrid"])
def provider(request, settings):
    api = {"postmark": _postmark, "sendgrid": _sendgrid}[request.param](settings)
    api.name = request.param
    yield api
    api.stop()


PDF = b"%PDF-1.7\n\x00\xff"


def _deliver_full_message(api: ProviderAPI) -> ApiRequest:
    """Deliver a message with HTML, thread headers and a PDF through `api`; the one request it received."""
    pdf = outbox.attachment("Rechnung März.pdf", "application/pdf", PDF)
    try:
        assert outbox.deliver(store(headers=THREAD, html_body="<p>It is on its way.</p>", attachments=[pdf])) is True
    finally:
        api.stop()
    (request,) = api.requests
    return request


def test_postmark_receives_the_message_in_its_documented_shape(settings):
    request = _deliver_full_message(_postmark(settings))

    assert request.headers["accept"] == "application/json"
    body = request.body
    assert body["From"] == "Acme Support <support@acme.example>"
    assert body["To"] == "Dana Customer <dana@customer.example>"
    assert (body["Subject"], body["TextBody"], body["HtmlBody"]) == (
        "Your refund",
        "It is on its way.\n",
        "<p>It is on its way.</p>",
    )
    headers = {header["Name"]: header["Value"] for header in body["Headers"]}
    assert headers["Message-ID"] == MESSAGE_ID
    assert headers["In-Reply-To"] == THREAD["In-Reply-To"]
    assert headers["References"] == THREAD["References"]
    assert headers["Auto-Submitted"] == "auto-generated"
    (attachment,) = body["Attachments"]
    assert (attachment["Name"], attachment["ContentType"]) == ("Rechnung März.pdf", "application/pdf")
    assert base64.b64decode(attachment["Content"]) == PDF


def test_sendgrid_receives_the_message_in_its_documented_shape(settings):
    body = _deliver_full_message(_sendgrid(settings)).body

    (personalization,) = body["personalizations"]
    assert personalization["to"] == [{"email": "dana@customer.example", "name": "Dana Customer"}]
    assert body["from"] == {"email": "support@acme.example", "name": "Acme Support"}
    assert body["subject"] == "Your refund"
    assert body["content"] == [
        {"type": "text/plain", "value": "It is on its way.\n"},
        {"type": "text/html", "value": "<p>It is on its way.</p>"},
    ]
    assert body["headers"]["Message-ID"] == MESSAGE_ID
    assert body["headers"]["In-Reply-To"] == THREAD["In-Reply-To"]
    assert body["headers"]["References"] == THREAD["References"]
    (attachment,) = body["attachments"]
    assert (attachment["filename"], attachment["type"]) == ("Rechnung März.pdf", "application/pdf")
    assert base64.b64decode(attachment["content"]) == PDF


def test_a_provider_accepting_the_message_marks_it_sent(provider):
    message = store()

    assert outbox.deliver(message) is True

    message.refresh_from_db()
    assert (message.status, message.last_error) == (OutboxStatus.SENT, "")
    assert len(provider.requests) == 1


def test_a_provider_refusing_the_key_fails_the_message_for_good(provider, settings):
    key = next(name for name in settings.ANYMAIL if name.endswith(("_TOKEN", "_KEY")))
    settings.ANYMAIL = {**settings.ANYMAIL, key: "revoked"}
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, message.status) == (True, OutboxStatus.FAILED)
    assert "HTTP 401" in message.last_error and "revoked" not in message.last_error


def test_a_provider_asking_to_slow_down_is_retried_after_its_wait(provider):
    provider.answer_next(429, {"Message": "Rate limit exceeded"}, **{"Retry-After": "30"})
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, error.retry_after, message.status) == (False, 30.0, OutboxStatus.PENDING)
    assert "429" in message.last_error
    # The next attempt goes through.
    assert outbox.deliver(message) is True


def test_a_provider_failing_inside_is_retried(provider):
    provider.answer_next(500, {"Message": "Internal server error"})
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, error.retry_after, message.status) == (False, None, OutboxStatus.PENDING)
    assert "HTTP 500" in message.last_error


def test_postmark_refusing_every_recipient_fails_the_message_for_good(settings):
    api = _postmark(settings)
    inactive = (
        "You tried to send to a recipient that has been marked as inactive.\n"
        "Found inactive addresses: dana@customer.example.\n"
        "Inactive recipients are ones that have generated a hard bounce or a spam complaint."
    )
    api.answer_next(422, {"ErrorCode": 406, "Message": inactive})
    message = store()
    try:
        error = deliver_refused(message)
    finally:
        api.stop()

    assert (error.permanent, message.status) == (True, OutboxStatus.FAILED)
    assert "refused the recipients" in message.last_error


def test_through_a_web_api_an_invitation_keeps_its_method_as_an_attachment(settings):
    api = _postmark(settings)
    ics = invitation()
    try:
        outbox.deliver(store(attachments=[outbox.attachment("invite.ics", calendar.REQUEST_CONTENT_TYPE, ics)]))
    finally:
        api.stop()

    (attachment,) = api.requests[0].body["Attachments"]
    assert attachment["Name"] == "invite.ics"
    assert attachment["ContentType"].startswith("text/calendar")
    assert Calendar.from_ical(base64.b64decode(attachment["Content"]))["METHOD"] == "REQUEST"


def test_a_provider_that_cannot_be_reached_is_retried(provider, settings):
    provider.stop()
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, message.status) == (False, OutboxStatus.PENDING)
    assert "Could not reach the provider" in message.last_error


def test_provider_health_checks_the_key_is_set_without_calling(provider, settings):
    health = mail_backend().health()

    assert (health.ok, health.backend) == (True, provider.name)
    assert "not probed" in health.detail
    assert provider.requests == []

    settings.ANYMAIL = {name: value for name, value in settings.ANYMAIL.items() if name.endswith("_API_URL")}
    health = mail_backend().health()

    assert not health.ok
    assert "_KEY" in health.detail or "_TOKEN" in health.detail


def test_a_provider_without_its_key_fails_the_message_for_good(provider, settings):
    settings.ANYMAIL = {}
    message = store()

    error = deliver_refused(message)

    assert (error.permanent, message.status) == (True, OutboxStatus.FAILED)
    assert "not configured" in message.last_error
    assert provider.requests == []


# --- Amazon SES, through moto's SES server on loopback ----------------------------------------


@pytest.fixture
def ses(settings):
    """moto's SES server; the sender is a verified identity, as SES requires."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client = {
        "region_name": "eu-west-1",
        "endpoint_url": f"http://{host}:{port}",
        "aws_access_key_id": "mailroom-test",
        "aws_secret_access_key": "mailroom-test-secret",
    }
    # moto keeps its state per process, not per server: start from nothing.
    reset = urllib.request.Request(f"{client['endpoint_url']}/moto-api/reset", method="POST")  # noqa: S310 - loopback
    urllib.request.urlopen(reset, timeout=5).close()  # noqa: S310 - loopback
    boto3.client("ses", **client).verify_email_identity(EmailAddress="support@acme.example")
    settings.EMAIL_BACKEND = "anymail.backends.amazon_ses.EmailBackend"
    settings.ANYMAIL = {"AMAZON_SES_CLIENT_PARAMS": {**client, "config": {"connect_timeout": 5, "read_timeout": 5}}}
    yield client["endpoint_url"]
    server.stop()


def _sent_through_ses(endpoint: str) -> list[email.message.EmailMessage]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=5) as response:  # noqa: S310 - loopback
        raw = json.load(response)["ses"]["RawMessage"]
    return [email.message_from_string(item["raw_data"], policy=email.policy.default) for item in raw]


def test_amazon_ses_sends_the_mime_message_django_writes(ses):
    ics = invitation()
    message = store(headers=THREAD, attachments=[outbox.attachment("invite.ics", calendar.REQUEST_CONTENT_TYPE, ics)])

    assert outbox.deliver(message) is True

    (sent,) = _sent_through_ses(ses)
    assert sent.get_all("Message-ID") == [MESSAGE_ID]
    assert (sent["From"], sent["To"]) == (
        "Acme Support <support@acme.example>",
        "Dana Customer <dana@customer.example>",
    )
    assert (sent["In-Reply-To"], sent["Auto-Submitted"]) == (THREAD["In-Reply-To"], "auto-generated")
    inline = next(part for part in sent.walk() if part.get_content_type() == "text/calendar")
    assert inline.get_param("method") == "REQUEST"


def test_amazon_ses_refusing_an_unverified_sender_fails_the_message_for_good(ses):
    message = store(from_email="stranger@elsewhere.example")

    error = deliver_refused(message)

    assert (error.permanent, message.status) == (True, OutboxStatus.FAILED)
    assert "HTTP 400" in message.last_error and "mailroom-test-secret" not in message.last_error
    assert _sent_through_ses(ses) == []
