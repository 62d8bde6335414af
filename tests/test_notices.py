"""The delegation and escalation notices: what they say, who gets them, and what strangers' text cannot do to them."""

from __future__ import annotations

import email
import email.policy
from email.utils import getaddresses

import pytest

from actions.models import Priority
from teams.models import Role, TeamMember
from teams.notices import build_delegation_notice, build_escalation_notice, one_line

INJECTION = "Invoice\r\nBcc: evil@example.com"
SCRIPT = "<script>alert(1)</script>"


def _member(user, first_name: str, last_name: str, role: str, manager: TeamMember | None = None) -> TeamMember:
    user.first_name, user.last_name = first_name, last_name
    user.save()
    return TeamMember.objects.create(user=user, role=role, manager=manager)


@pytest.fixture
def director(charlie):
    return _member(charlie, "Charlie", "Chen", Role.DIRECTOR)


@pytest.fixture
def manager(alice, director):
    return _member(alice, "Alice", "Archer", Role.MANAGER, manager=director)


@pytest.fixture
def agent(bob, manager):
    return _member(bob, "Bob", "Baker", Role.AGENT, manager=manager)


@pytest.fixture
def customer_email(make_email):
    return make_email(
        subject="Refund for order 1234",
        from_name="Dana Customer",
        from_address="dana@customer.example",
        text_body="Hello,\n\nI was charged twice for order 1234. Please refund one of the charges.\n\nDana",
    )


@pytest.fixture
def delegation(make_action, customer_email):
    return make_action("delegate_task", email=customer_email, rationale="Billing question; Bob knows billing.")


@pytest.fixture
def escalation(make_action, customer_email):
    return make_action(
        "escalate_issue", email=customer_email, priority=Priority.HIGH, rationale="The customer is angry."
    )


def _parsed(message) -> email.message.EmailMessage:
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def _html(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def _addresses(parsed, *headers: str) -> list[str]:
    return [address for _, address in getaddresses([str(v) for h in headers for v in parsed.get_all(h, [])])]


def _notices(action, agent, manager, director):
    """One of each notice, for the checks both must pass."""
    return [
        build_delegation_notice(action, agent, delegated_by="Alice Archer", note="Please take this one."),
        build_escalation_notice(action, [manager, director], level=2, reason="No answer in two days."),
    ]


# --- Delegation -------------------------------------------------------------


def test_delegation_notice_tells_the_assignee_what_was_delegated_and_by_whom(delegation, agent, manager):
    message = build_delegation_notice(
        delegation, agent, delegated_by="Alice Archer", note="You handled their last refund.", previous=manager
    )

    assert message.subject == "Delegated to you: Refund for order 1234"
    for body in (message.body, _html(message)):
        assert "Hello Bob Baker" in body
        assert "Alice Archer delegated this to you" in body
        assert "it was with Alice Archer before" in body
        assert "You handled their last refund." in body
        assert "Refund for order 1234" in body
        assert "dana@customer.example" in body
        assert "Dana Customer" in body
        assert "I was charged twice for order 1234." in body
        assert "Normal" in body


def test_delegation_notice_links_to_the_action_in_the_admin_by_absolute_url(settings, delegation, agent):
    settings.SITE_URL = "https://mailroom.acme.example"

    message = build_delegation_notice(delegation, agent)

    link = f"https://mailroom.acme.example/admin/actions/action/{delegation.pk}/change/"
    assert f"Open it in Mailroom: {link}" in message.body
    assert f'href="{link}"' in _html(message)


def test_delegation_by_mailroom_itself_names_mailroom_as_the_delegator(delegation, agent):
    message = build_delegation_notice(delegation, agent)

    assert "Mailroom delegated this to you." in message.body
    assert "Mailroom delegated this to you." in _html(message)


def test_delegation_notice_gives_the_rationale_when_there_is_no_note(delegation, agent):
    message = build_delegation_notice(delegation, agent, delegated_by="Alice Archer")

    assert "Note: Billing question; Bob knows billing." in message.body
    assert "Billing question; Bob knows billing." in _html(message)


def test_delegation_notice_quotes_only_the_start_of_a_long_body(make_email, make_action, agent):
    body = "Start of the story. " + "blah " * 400 + "THE-END-MARKER"
    action = make_action("delegate_task", email=make_email(text_body=body))

    message = build_delegation_notice(action, agent)

    assert "> Start of the story." in message.body
    assert "THE-END-MARKER" not in message.body
    assert "THE-END-MARKER" not in _html(message)
    quoted = "\n".join(line for line in message.body.splitlines() if line.startswith(">"))
    assert len(quoted) <= 500 + len("> ")
    assert quoted.endswith("…")


def test_delegation_notice_quotes_the_plain_text_of_an_html_only_email(make_email, make_action, agent):
    action = make_action("delegate_task", email=make_email(text_body="", html_body="<p>Only <b>HTML</b> here</p>"))

    message = build_delegation_notice(action, agent)

    assert "> Only HTML here" in message.body


def test_delegation_undo_notice_says_the_work_went_back_to_the_previous_assignee(delegation, agent, manager):
    message = build_delegation_notice(delegation, agent, delegated_by="Alice Archer", previous=manager, undo=True)

    assert message.subject == "Delegation taken back: Refund for order 1234"
    for body in (message.body, _html(message)):
        assert "Alice Archer took back the delegation of this work to you." in body
        assert "It is back with Alice Archer." in body
        assert "delegated this to you" not in body


def test_delegation_undo_without_a_previous_assignee_says_it_is_no_longer_theirs(delegation, agent):
    message = build_delegation_notice(delegation, agent, undo=True)

    assert "It is no longer assigned to you." in message.body
    assert "It is no longer assigned to you." in _html(message)


def test_delegation_notice_goes_to_the_assignee_only(delegation, agent, manager):
    message = build_delegation_notice(delegation, agent, previous=manager)

    assert message.to == ["Bob Baker <bob@acme.example>"]
    assert message.cc == [] and message.bcc == []
    assert message.recipients() == ["Bob Baker <bob@acme.example>"]
    assert _addresses(_parsed(message), "To", "Cc", "Bcc") == ["bob@acme.example"]


def test_a_member_without_a_usable_address_is_refused(delegation, agent):
    agent.user.email = ""
    agent.user.save()

    with pytest.raises(ValueError, match="Bob Baker has no usable email address"):
        build_delegation_notice(delegation, agent)


# --- Escalation -------------------------------------------------------------


def test_escalation_notice_tells_the_chain_the_level_the_reason_and_the_email(escalation, agent, manager, director):
    message = build_escalation_notice(
        escalation, [manager, director], level=2, reason="No answer in two days.", escalated_from=agent
    )

    assert message.subject == "Escalated to level 2: Refund for order 1234"
    for body in (message.body, _html(message)):
        assert "escalated to level 2 from Bob Baker, to Alice Archer." in body
        assert "No answer in two days." in body
        assert "Copied to the rest of the escalation chain: Charlie Chen." in body
        assert "Refund for order 1234" in body
        assert "Dana Customer" in body
        assert "I was charged twice for order 1234." in body
        assert "High" in body
        assert f"/admin/actions/action/{escalation.pk}/change/" in body


def test_escalation_notice_puts_the_first_member_in_to_and_the_rest_of_the_chain_in_cc(escalation, manager, director):
    message = build_escalation_notice(escalation, [manager, director], level=2, reason="Stuck.")

    assert message.to == ["Alice Archer <alice@acme.example>"]
    assert message.cc == ["Charlie Chen <charlie@acme.example>"]
    assert message.bcc == []
    parsed = _parsed(message)
    assert _addresses(parsed, "To") == ["alice@acme.example"]
    assert _addresses(parsed, "Cc") == ["charlie@acme.example"]
    assert parsed.get_all("Bcc") is None


def test_escalation_notice_sends_one_copy_to_a_member_named_twice(escalation, manager, director):
    message = build_escalation_notice(escalation, [manager, director, manager], level=3, reason="Stuck.")

    assert message.to == ["Alice Archer <alice@acme.example>"]
    assert message.cc == ["Charlie Chen <charlie@acme.example>"]
    assert "Copied to the rest of the escalation chain: Charlie Chen." in message.body


@pytest.mark.parametrize(
    ("priority", "subject"),
    [
        (Priority.URGENT, "[Urgent] Escalated to level 1: Refund for order 1234"),
        (Priority.HIGH, "Escalated to level 1: Refund for order 1234"),
    ],
)
def test_only_an_urgent_escalation_says_urgent_in_the_subject(make_action, customer_email, manager, priority, subject):
    action = make_action("escalate_issue", email=customer_email, priority=priority)

    message = build_escalation_notice(action, [manager], level=1, reason="Customer threatens to leave.")

    assert message.subject == subject
    assert ("Urgent" in _html(message)) == (priority == Priority.URGENT)


def test_escalation_undo_is_a_de_escalation_notice(escalation, agent, manager, director):
    message = build_escalation_notice(
        escalation, [manager, director], level=2, reason="Bob found the refund.", escalated_from=agent, undo=True
    )

    assert message.subject == "De-escalated from level 2: Refund for order 1234"
    for body in (message.body, _html(message)):
        assert "The escalation of this issue to level 2 was taken back; it is with Bob Baker again." in body
        assert "Bob found the refund." in body
        assert "escalated to level 2 from" not in body


def test_escalation_needs_a_chain_and_a_level_from_one_up(escalation, manager):
    with pytest.raises(ValueError, match="at least one recipient"):
        build_escalation_notice(escalation, [], level=1, reason="Stuck.")
    with pytest.raises(ValueError, match="level must be a whole number from 1 up"):
        build_escalation_notice(escalation, [manager], level=0, reason="Stuck.")


# --- Both notices -----------------------------------------------------------


def test_a_notice_for_an_action_without_an_email_is_about_the_action(make_action, agent):
    action = make_action("delegate_task", email=None, rationale="Follow up with the supplier.")

    message = build_delegation_notice(action, agent)

    assert message.subject == f"Delegated to you: #{action.pk} Delegate task"
    assert "From:" not in message.body
    assert "The email begins" not in message.body
    assert "Follow up with the supplier." in message.body


def test_a_header_injection_in_the_email_subject_stays_inside_the_subject(
    make_email, make_action, agent, manager, director
):
    action = make_action("delegate_task", email=make_email(subject=INJECTION))

    for message in _notices(action, agent, manager, director):
        assert "\r" not in message.subject and "\n" not in message.subject
        assert message.subject.endswith(": Invoice Bcc: evil@example.com")
        parsed = _parsed(message)
        assert parsed["Subject"] == message.subject
        assert parsed.get_all("Bcc") is None
        assert "evil@example.com" not in _addresses(parsed, "To", "Cc", "Bcc")
        assert all("evil" not in recipient for recipient in message.recipients())


def test_a_header_injection_in_a_member_name_stays_inside_the_name(delegation, bob):
    member = _member(bob, "Bob\r\nBcc: evil@example.com", "Baker", Role.AGENT)

    message = build_delegation_notice(delegation, member)

    parsed = _parsed(message)
    assert parsed.get_all("Bcc") is None
    assert _addresses(parsed, "To", "Cc", "Bcc") == ["bob@acme.example"]


def test_html_bodies_escape_what_strangers_wrote(make_email, make_action, agent, manager, director):
    action = make_action(
        "delegate_task",
        email=make_email(subject=SCRIPT, from_name=SCRIPT, text_body=f"Look: {SCRIPT}"),
        rationale=SCRIPT,
    )

    for message in _notices(action, agent, manager, director):
        html = _html(message)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html


def test_text_bodies_show_what_strangers_wrote_without_html_escapes(make_email, make_action, agent, manager, director):
    action = make_action("delegate_task", email=make_email(subject="Tom & Jerry <3", text_body="Fish & chips"))

    for message in _notices(action, agent, manager, director):
        assert "Subject:  Tom & Jerry <3" in message.body
        assert "> Fish & chips" in message.body
        assert "&amp;" not in message.body and "&lt;" not in message.body


def test_notices_are_marked_auto_generated(delegation, agent, manager, director):
    for message in _notices(delegation, agent, manager, director):
        assert _parsed(message)["Auto-Submitted"] == "auto-generated"


def test_notices_come_from_the_default_from_address(settings, delegation, agent, manager, director):
    settings.DEFAULT_FROM_EMAIL = "Mailroom <mailroom@acme.example>"

    for message in _notices(delegation, agent, manager, director):
        assert message.from_email == "Mailroom <mailroom@acme.example>"
        assert _addresses(_parsed(message), "From") == ["mailroom@acme.example"]


def test_a_notice_parses_back_as_text_and_html_alternatives(delegation, agent, manager, director):
    for message in _notices(delegation, agent, manager, director):
        parsed = _parsed(message)

        assert parsed.get_content_type() == "multipart/alternative"
        parts = list(parsed.iter_parts())
        assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
        assert "Refund for order 1234" in parts[0].get_content()
        assert "<h1" in parts[1].get_content()


def test_a_notice_with_non_ascii_text_survives_encoding(make_email, make_action, bob):
    member = _member(bob, "Zoë", "Ångström", Role.AGENT)
    action = make_action("delegate_task", email=make_email(subject="Rückerstattung für Bestellung", text_body="Grüße"))

    parsed = _parsed(build_delegation_notice(action, member))

    # Django folds an encoded subject onto a continuation line; unfolding leaves its leading space.
    assert parsed["Subject"].strip() == "Delegated to you: Rückerstattung für Bestellung"
    assert str(parsed["To"]) == "Zoë Ångström <bob@acme.example>"
    assert "> Grüße" in parsed.get_body(("plain",)).get_content()


def test_one_line_turns_every_kind_of_line_break_into_a_single_space():
    assert one_line("a\r\nb\rc\nd\u2028e\x85f\vg\x00h\t\ti") == "a b c d e f g h i"
