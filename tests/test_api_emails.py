"""/api/v1/emails/: raw MIME and JSON in, stored once, bad input refused naming the field; reading what one may see."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from actions.models import Action, Attachment, Automated, Email, EmailSource, EmailStatus, Priority
from tests.api_lists import assert_constant_queries, ids
from tests.api_people import client_for
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


@pytest.mark.security
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


@pytest.mark.security
def test_someone_without_the_permission_cannot_post(bob, charlie):
    client = APIClient()
    client.force_authenticate(charlie)
    assert post_raw(client, message()).status_code == 403
    assert post_raw(APIClient(), message()).status_code in (401, 403)
    assert not Email.objects.exists()


# --- Reading: GET /api/v1/emails/ and /api/v1/emails/{id}/ ---------------------------------------


def test_the_owner_lists_every_email_newest_first(world):
    response = client_for(world.owner).get(URL)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [
        world.other_email.pk,
        world.approval_email.pk,
        world.member_email.pk,
    ]


@pytest.mark.parametrize(
    ("persona", "email"), [("member", "member_email"), ("approver", "approval_email"), ("outsider", None)]
)
def test_the_others_list_only_the_emails_of_the_actions_they_may_see(world, persona, email):
    response = client_for(getattr(world, persona)).get(URL)
    assert ids(response) == ({getattr(world, email).pk} if email else set())


def test_a_stranger_without_credentials_is_asked_for_them(world):
    assert client_for(None).get(URL).status_code == 401


def test_an_email_shows_its_headers_bodies_attachments_thread_and_actions(world):
    email = world.member_email
    email.headers = [["From", email.from_address], ["X-Ticket", "T-42"]]
    email.html_body = "<p>Hello</p>"
    email.parent = world.other_email
    email.save()
    Attachment.objects.create(email=email, filename="invoice.pdf", content_type="application/pdf", size=48213)

    body = client_for(world.owner).get(f"{URL}{email.pk}/").json()

    assert body["headers"] == [["From", email.from_address], ["X-Ticket", "T-42"]]
    assert (body["text_body"], body["html_body"]) == ("Hello, could you help me?", "<p>Hello</p>")
    assert [(a["filename"], a["content_type"], a["size"]) for a in body["attachments"]] == [
        ("invoice.pdf", "application/pdf", 48213)
    ]
    assert body["parent"] == world.other_email.pk
    assert body["actions"] == [world.member_action.pk]
    assert "raw" not in body


def test_a_member_sees_only_their_actions_and_no_thread_parent_they_may_not_see(world, make_action):
    email = world.member_email
    Email.objects.filter(pk=email.pk).update(parent=world.other_email)
    make_action("archive_email", email=email)  # not assigned to the member

    body = client_for(world.member).get(f"{URL}{email.pk}/").json()

    assert body["actions"] == [world.member_action.pk]
    assert body["parent"] is None


@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
@pytest.mark.security
def test_an_email_nobody_showed_them_is_not_found(world, persona):
    assert client_for(getattr(world, persona)).get(f"{URL}{world.other_email.pk}/").status_code == 404


def test_emails_are_filtered_by_status_mailbox_category_priority_and_sender(world):
    Email.objects.filter(pk=world.member_email.pk).update(
        status=EmailStatus.REVIEW, mailbox="sales@acme.example", category="billing", priority=Priority.URGENT
    )
    owner = client_for(world.owner)
    only_member_email = {world.member_email.pk}
    assert ids(owner.get(URL, {"status": "review"})) == only_member_email
    assert ids(owner.get(URL, {"mailbox": "SALES@acme.example"})) == only_member_email
    assert ids(owner.get(URL, {"category": "billing"})) == only_member_email
    assert ids(owner.get(URL, {"priority": Priority.URGENT})) == only_member_email
    assert ids(owner.get(URL, {"search": "Nobody else"})) == {world.other_email.pk}
    assert ids(owner.get(URL, {"search": world.approval_email.from_address})) == {world.approval_email.pk}


def test_emails_are_filtered_by_when_they_arrived_and_whether_a_machine_sent_them(world):
    Email.objects.filter(pk=world.other_email.pk).update(
        received_at=datetime(2020, 1, 2, tzinfo=UTC), automated=Automated.BOUNCE
    )
    owner = client_for(world.owner)
    assert ids(owner.get(URL, {"received_before": "2020-01-03T00:00:00Z"})) == {world.other_email.pk}
    assert world.other_email.pk not in ids(owner.get(URL, {"received_after": "2020-01-03T00:00:00Z"}))
    assert ids(owner.get(URL, {"automated": "true"})) == {world.other_email.pk}
    assert world.other_email.pk not in ids(owner.get(URL, {"automated": "false"}))


def test_a_filter_value_that_means_nothing_is_refused_naming_it(world):
    response = client_for(world.owner).get(URL, {"received_after": "last tuesday"})
    assert response.status_code == 400 and "received" in response.json()


@pytest.mark.parametrize("persona", ["owner", "member"])
def test_a_page_of_emails_costs_the_same_whatever_its_size(world, persona):
    emails = Email.objects.bulk_create(
        Email(mailbox="support@acme.example", message_id=f"<bulk-{n}@x.example>", subject=f"Bulk {n}")
        for n in range(110)
    )
    Attachment.objects.bulk_create(Attachment(email=email, filename="a.txt") for email in emails)
    Action.objects.bulk_create(
        Action(type="archive_email", email=email, assignee=world.member_action.assignee, idempotency_key=f"bulk-{n}")
        for n, email in enumerate(emails)
    )
    assert_constant_queries(client_for(getattr(world, persona)), URL)


def test_a_search_term_that_cannot_be_searched_is_refused_naming_it(world):
    response = client_for(world.owner).get(URL, {"search": "a\x00b"})
    assert response.status_code == 400 and "search" in response.json()


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+13:29", "9999-12-31T23:59:59-13:00"])
def test_a_time_that_cannot_be_stored_is_refused_naming_it(world, moment):
    response = client_for(world.owner).get(URL, {"received_after": moment})
    assert response.status_code == 400 and "received" in response.json()


def test_a_time_with_any_offset_python_reads_is_compared_in_utc(world):
    # PostgreSQL itself refuses offsets past 15:59.
    response = client_for(world.owner).get(URL, {"received_before": "2000-01-01T00:00:00+16:43"})
    assert ids(response) == set()
