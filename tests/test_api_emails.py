"""POST /api/v1/emails/: raw MIME and JSON in, stored once, bad input refused with the field named."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from actions.models import Email, EmailSource, EmailStatus
from tests.test_intake import message

URL = "/api/v1/emails/"


pytestmark = pytest.mark.usefixtures("media")


@pytest.fixture
def webhook(bob):
    """An API client signed in with bob's token; bob may add emails."""
    bob.user_permissions.add(Permission.objects.get(codename="add_email"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=bob).key}")
    return client


def post_raw(client, raw: bytes, **query):
    suffix = "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""
    return client.post(URL + suffix, data=raw, content_type="message/rfc822")


def test_a_raw_message_is_stored_and_its_run_started(webhook):
    response = post_raw(webhook, message(), mailbox="help@acme.example")
    assert response.status_code == 201, response.content
    body = response.json()
    email = Email.objects.get(pk=body["id"])
    assert (email.mailbox, email.source, email.subject) == ("help@acme.example", EmailSource.API, "Where is my order?")
    assert body == {
        "id": email.pk,
        "mailbox": "help@acme.example",
        "message_id": "<order-1@customer.example>",
        "status": "received",
        "created": True,
        "run": email.runs.get().pk,
    }


def test_posting_the_same_message_again_answers_200_and_stores_nothing(webhook, settings):
    settings.DEFAULT_MAILBOX = "support@acme.example"
    assert post_raw(webhook, message()).status_code == 201
    again = post_raw(webhook, message())
    assert again.status_code == 200 and again.json()["created"] is False
    assert Email.objects.count() == 1


def test_what_is_not_mail_is_kept_quarantined_with_202_and_the_reason(webhook):
    response = post_raw(webhook, b"\x00\x01 garbage")
    assert response.status_code == 202
    assert response.json()["status"] == EmailStatus.QUARANTINED and response.json()["reason"]


def test_an_empty_post_is_refused(webhook):
    response = post_raw(webhook, b"   ")
    assert response.status_code == 400 and "message" in response.json()


def test_a_message_over_the_limit_is_refused_with_413(webhook, settings):
    settings.MAX_MESSAGE_BYTES = 2048
    response = post_raw(webhook, message(body="x" * 4000))
    assert response.status_code == 413
    assert "2,048" in response.json()["detail"]
    assert not Email.objects.exists()


def test_the_json_form_is_turned_into_mail(webhook):
    response = webhook.post(
        URL,
        {
            "mailbox": "help@acme.example",
            "from": "Ana Lima <ana@bigcustomer.example>",
            "to": ["help@acme.example"],
            "subject": "Contract question",
            "text": "Could you send the signed contract?",
            "html": "<p>Could you send the <b>signed</b> contract?</p>",
            "message_id": "<contract-1@bigcustomer.example>",
            "headers": {"X-Ticket": "T-42"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    email = Email.objects.get(pk=response.json()["id"])
    assert (email.from_name, email.from_address) == ("Ana Lima", "ana@bigcustomer.example")
    assert email.text_body.strip() == "Could you send the signed contract?"
    assert "<b>signed</b>" in email.html_body
    assert ["X-Ticket", "T-42"] in email.headers


def test_the_json_form_without_a_message_id_is_stored_once(webhook):
    payload = {"from": "ana@bigcustomer.example", "subject": "Hi", "text": "Hello"}
    assert webhook.post(URL, payload, format="json").status_code == 201
    assert webhook.post(URL, payload, format="json").status_code == 200


def test_the_json_form_may_carry_the_raw_message(webhook):
    response = webhook.post(URL, {"raw": message().decode()}, format="json")
    assert response.status_code == 201
    assert Email.objects.get().message_id == "<order-1@customer.example>"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"subject": "x", "text": "y"}, "from"),
        ({"from": "a@b.example"}, "text"),
        ({"from": "a@b.example", "text": "y", "subject": "Hi\r\nBcc: victim@x.example"}, "subject"),
        ({"from": "a@b.example", "text": "y", "headers": {"X-Evil": "a\nBcc: v@x.example"}}, "headers.X-Evil"),
        ({"from": "a@b.example", "text": "y", "to": "not-a-list"}, "to"),
    ],
)
def test_bad_json_is_refused_naming_the_field(webhook, payload, field):
    response = webhook.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Email.objects.exists()


def test_someone_without_the_permission_cannot_post(bob, charlie):
    client = APIClient()
    client.force_authenticate(charlie)
    assert post_raw(client, message()).status_code == 403
    assert post_raw(APIClient(), message()).status_code in (401, 403)
    assert not Email.objects.exists()
