"""Emailed approval links: opening one changes nothing, only the confirmation page's POST decides.

The team is the hand-made twelve of tests/team_data.py. Liam (an agent)
proposes forwarding a customer's email to an outside lawyer; the shipped
policy "Forwarding outside the company" asks the leads, Aiko and Priya,
who each get an email with a link of their own.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from actions.executor import run_action
from actions.models import Action, ActionSource, ActionStatus, AuditEntry
from actions.proposals import propose_action
from approvals.decisions import link_token, read_link_token, time_out
from approvals.models import Approval, ApprovalPolicy, ApprovalStatus, ApprovalVote
from approvals.routing import route_action
from approvals.views import SESSION_KEY
from integrations.models import OutboxMessage
from teams.directory import import_directory
from teams.models import TeamMember
from tests.team_data import TEAM

S = ActionStatus
DECIDE = "/approvals/decide/"
LINK = re.compile(r"https://mailroom\.acme\.example/approvals/[^\s\"<]+")
SUBJECT = "Contract draft for review"
DASH = "\N{EN DASH}"  # between the action and the email's subject in a subject line


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.SEND_DELAY_SECONDS = 0
    settings.SITE_URL = "https://mailroom.acme.example"


@pytest.fixture
def team(db) -> dict:
    """The team's users by first name, lower case."""
    import_directory({"members": TEAM})
    return {m.user.first_name.lower(): m.user for m in TeamMember.objects.select_related("user")}


@pytest.fixture
def ask(team, make_email):
    """Propose (as Liam) a forward outside the company, route it, and return the action and its approval."""

    def make(subject: str = SUBJECT) -> tuple[Action, Approval]:
        email = make_email(
            subject=subject,
            from_address="jo@customer.example",
            from_name="Jo Customer",
            text_body="Hello,\nplease have your lawyer look at the draft.\nJo",
        )
        action = propose_action(
            "forward_email",
            email=email,
            params={"to": ["counsel@lawfirm.example"], "note": "For your review"},
            source=ActionSource.AI,
            confidence=0.97,
            rationale="The customer asks for a legal review of the draft.",
            acting_user=team["liam"],
        )
        route_action(action)
        return action, Approval.objects.get(action=action)

    return make


@pytest.fixture
def asked(ask):
    return ask()


def _messages_to(user, subject_start: str) -> list[OutboxMessage]:
    return [
        m for m in OutboxMessage.objects.order_by("pk") if m.to == [user.email] and m.subject.startswith(subject_start)
    ]


def request_email(user) -> OutboxMessage:
    [message] = _messages_to(user, "Approval needed")
    return message


def link_paths(user) -> list[str]:
    """The paths of the links in the approval emails `user` got, oldest first."""
    return [urlsplit(LINK.search(m.text_body).group()).path for m in _messages_to(user, "Approval needed")]


def link_path(user) -> str:
    [path] = link_paths(user)
    return path


def token_of(path: str) -> str:
    return path.removeprefix("/approvals/").removesuffix("/")


def opened(client: Client, user) -> Client:
    """The client after `user` opened their link while logged in."""
    client.force_login(user)
    response = client.get(link_path(user))
    assert (response.status_code, response["Location"]) == (302, DECIDE)
    return client


def _state(action: Action, approval: Approval) -> tuple:
    return (
        Action.objects.get(pk=action.pk).status,
        Approval.objects.get(pk=approval.pk).status,
        ApprovalVote.objects.count(),
        AuditEntry.objects.count(),
    )


def _page(response) -> str:
    return response.content.decode()


# --- Opening the link ---------------------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize("method", ["get", "head"])
def test_opening_the_link_changes_nothing(client, team, asked, method):
    action, approval = asked
    before = _state(action, approval)

    response = getattr(client, method)(link_path(team["aiko"]))

    assert response.status_code == 302
    assert _state(action, approval) == before == (S.PENDING_APPROVAL, ApprovalStatus.PENDING, 0, before[3])


@pytest.mark.security
def test_the_token_leaves_the_address_for_the_session(client, team, asked):
    path = link_path(team["aiko"])

    response = client.get(path)

    assert response["Location"] == DECIDE == reverse("approvals:decide")
    assert client.session[SESSION_KEY] == token_of(path)


def test_the_confirmation_page_shows_the_action_and_two_buttons(client, team, asked):
    _, approval = asked
    path = link_path(team["aiko"])

    page = _page(opened(client, team["aiko"]).get(DECIDE))

    for shown in [
        f"#{approval.action_id} Forward email",
        "counsel@lawfirm.example",
        "For your review",
        SUBJECT,
        "Jo Customer &lt;jo@customer.example&gt;",
        "please have your lawyer look at the draft.",
        "97% (AI analysis)",
        "The customer asks for a legal review of the draft.",
        "Forwarding outside the company",
        date_format(timezone.localtime(approval.expires_at), "j M Y, H:i T"),
        "Liam OBrien",
        "You are deciding as Aiko Tanaka.",
    ]:
        assert shown in page, shown
    assert '<form method="post" action="/approvals/decide/">' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert '<button type="submit" name="decision" value="approve"' in page
    assert '<button type="submit" name="decision" value="reject"' in page
    assert "<script" not in page
    assert token_of(path) not in page


@pytest.mark.security
def test_both_pages_keep_out_of_caches_and_the_token_out_of_referers(client, team, asked):
    client.force_login(team["aiko"])
    with_token = [client.get(link_path(team["aiko"])), client.get("/approvals/not-a-token/")]
    with_token += [client.post(link_path(team["aiko"]))]
    decide_page = [client.get(DECIDE), client.post(DECIDE, {})]

    for response in with_token:
        assert response["Referrer-Policy"] == "no-referrer"
    # The decide page holds no secret; same-origin keeps its form's Origin header real.
    for response in decide_page:
        assert response["Referrer-Policy"] == "same-origin"
    for response in with_token + decide_page:
        assert "no-store" in response["Cache-Control"]


@pytest.mark.security
def test_only_get_and_head_open_a_link(client, team, asked):
    action, approval = asked
    before = _state(action, approval)
    path = link_path(team["aiko"])

    assert [client.generic(method, path).status_code for method in ["POST", "PUT", "DELETE"]] == [405] * 3
    assert client.put(DECIDE).status_code == 405
    assert SESSION_KEY not in client.session
    assert _state(action, approval) == before


@pytest.mark.security
def test_without_a_link_in_the_session_the_page_asks_for_it(client, team, asked):
    client.force_login(team["aiko"])

    response = client.get(DECIDE)

    assert response.status_code == 400
    assert "Open the link from your email" in _page(response)


# --- Logging in -----------------------------------------------------------------------


def test_an_approver_who_is_not_logged_in_signs_in_and_comes_back(client, team, asked):
    # Not staff: approvers sign in on Mailroom's own page, not the admin's.
    aiko = team["aiko"]
    aiko.set_password("aiko-password")
    aiko.save()
    path = link_path(aiko)
    client.get(path)

    to_login = client.get(DECIDE)
    login_url = f"{reverse('login')}?next=/approvals/decide/"
    assert (to_login.status_code, to_login["Location"]) == (302, login_url)
    assert to_login["Referrer-Policy"] == "same-origin"

    back = client.post(login_url, {"username": aiko.username, "password": "aiko-password", "next": DECIDE})
    assert (back.status_code, back["Location"]) == (302, DECIDE)

    page = client.get(DECIDE)
    assert page.status_code == 200
    assert 'value="approve"' in _page(page)
    assert token_of(path) not in to_login["Location"] + back["Location"]


def test_without_required_login_the_link_decides_as_its_approver(client, team, asked, settings):
    settings.APPROVAL_LINK_REQUIRES_LOGIN = False
    action, approval = asked
    client.get(link_path(team["priya"]))

    assert client.get(DECIDE).status_code == 200
    response = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert response.status_code == 200
    vote = ApprovalVote.objects.get()
    assert (vote.voter, vote.via) == (team["priya"], "email link")
    assert Action.objects.get(pk=action.pk).status == S.QUEUED


@pytest.mark.security
def test_a_link_for_another_approver_is_refused_to_whoever_is_logged_in(client, team, asked):
    action, approval = asked
    before = _state(action, approval)
    client.force_login(team["priya"])
    client.get(link_path(team["aiko"]))

    page = client.get(DECIDE)
    post = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert (page.status_code, post.status_code) == (403, 403)
    assert "This link is for Aiko Tanaka" in _page(page)
    assert "logged in as Priya Natarajan" in _page(page)
    assert "Forward email" not in _page(page)
    assert _state(action, approval) == before


@pytest.mark.security
def test_someone_not_asked_to_decide_is_refused_even_with_a_valid_token(client, team, asked, charlie):
    # Only a token signed with the secret key can name charlie; the check behind it still holds.
    action, approval = asked
    before = _state(action, approval)
    client.force_login(charlie)
    assert client.get(reverse("approvals:link", args=[link_token(approval, charlie)])).status_code == 302

    page = client.get(DECIDE)
    post = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert (page.status_code, post.status_code) == (403, 403)
    assert "You may not decide this approval." in _page(post)
    assert _state(action, approval) == before


# --- Deciding ---------------------------------------------------------------------------


def test_approving_queues_the_action_and_records_the_vote_with_its_comment(client, team, asked):
    action, approval = asked
    client = opened(client, team["aiko"])

    response = client.post(
        DECIDE, {"approval": approval.pk, "decision": "approve", "comment": "  Counsel expects it.  "}
    )

    assert response.status_code == 200
    assert "Your decision is recorded." in _page(response)
    assert Action.objects.get(pk=action.pk).status == S.QUEUED
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.comment) == (
        ApprovalStatus.APPROVED,
        team["aiko"],
        "Counsel expects it.",
    )
    vote = ApprovalVote.objects.get()
    assert (vote.voter, vote.decision, vote.via, vote.comment) == (
        team["aiko"],
        "approve",
        "email link",
        "Counsel expects it.",
    )
    [entry] = AuditEntry.objects.for_object(approval).filter(event="approval.approve_vote")
    assert (entry.actor, entry.details) == (team["aiko"], {"comment": "Counsel expects it.", "via": "email link"})


def test_rejecting_rejects_the_action_and_it_never_runs(client, team, asked):
    action, approval = asked
    client = opened(client, team["priya"])

    response = client.post(DECIDE, {"approval": approval.pk, "decision": "reject", "comment": "Not to outsiders."})

    assert response.status_code == 200
    assert Action.objects.get(pk=action.pk).status == S.REJECTED
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.REJECTED
    assert run_action(action.pk) == "not queued"
    assert Action.objects.get(pk=action.pk).status == S.REJECTED


@pytest.mark.security
def test_a_second_visit_shows_the_recorded_outcome(client, team, asked):
    _, approval = asked
    opened(client, team["aiko"]).post(DECIDE, {"approval": approval.pk, "decision": "approve", "comment": "Fine."})

    again = _page(opened(Client(), team["aiko"]).get(DECIDE))
    other = _page(opened(Client(), team["priya"]).get(DECIDE))

    for page in (again, other):
        assert "is approved" in page
        assert "Aiko Tanaka" in page
        assert "Fine." in page
        assert 'value="approve"' not in page
    assert "Aiko Tanaka (you)" in again
    assert token_of(link_path(team["aiko"])) not in again


@pytest.mark.security
def test_a_replayed_post_is_refused_without_a_second_vote(client, team, asked):
    _, approval = asked
    client = opened(client, team["aiko"])
    data = {"approval": approval.pk, "decision": "approve"}

    first, replay = client.post(DECIDE, data), client.post(DECIDE, data)

    assert (first.status_code, replay.status_code) == (200, 409)
    assert "This approval was already approved." in _page(replay)
    assert ApprovalVote.objects.count() == 1


def test_a_vote_that_does_not_settle_the_approval_shows_how_many_are_needed(client, team, ask):
    ApprovalPolicy.objects.filter(name="Forwarding outside the company").update(approvals_required=2)
    action, approval = ask()
    client = opened(client, team["aiko"])

    response = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert "Waiting for 2 approvals; 1 vote so far." in _page(response)
    assert Action.objects.get(pk=action.pk).status == S.PENDING_APPROVAL
    assert 'value="approve"' not in _page(client.get(DECIDE))


@pytest.mark.security
def test_a_post_without_a_choice_decides_nothing(client, team, asked):
    action, approval = asked
    client = opened(client, team["aiko"])
    before = _state(action, approval)

    response = client.post(DECIDE, {"approval": approval.pk, "decision": "maybe"})

    assert response.status_code == 400
    assert 'value="approve"' in _page(response)
    assert _state(action, approval) == before


@pytest.mark.security
def test_a_page_loaded_for_one_approval_does_not_decide_another(client, team, ask):
    _, first = ask()
    ask()
    client.force_login(team["aiko"])
    first_link, second_link = link_paths(team["aiko"])
    assert 'value="approve"' in _page(client.get(client.get(first_link)["Location"]))
    client.get(second_link)

    # The page shown was for the first; the session now holds the second.
    response = client.post(DECIDE, {"approval": first.pk, "decision": "approve"})

    assert response.status_code == 409
    assert ApprovalVote.objects.count() == 0


@pytest.mark.security
def test_a_post_without_the_csrf_token_is_refused(team, asked):
    action, approval = asked
    client = opened(Client(enforce_csrf_checks=True), team["aiko"])
    page = client.get(DECIDE)
    before = _state(action, approval)

    forged = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert forged.status_code == 403
    assert _state(action, approval) == before
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', _page(page)).group(1)
    real = client.post(DECIDE, {"approval": approval.pk, "decision": "approve", "csrfmiddlewaretoken": csrf})
    assert real.status_code == 200
    assert ApprovalVote.objects.count() == 1


# --- Links that do not work ------------------------------------------------------------------


@pytest.mark.security
@pytest.mark.parametrize("tamper", ["payload", "garbage"])
def test_a_tampered_token_is_a_bad_request(client, team, asked, tamper):
    action, approval = asked
    before = _state(action, approval)
    token = token_of(link_path(team["aiko"]))
    token = {"payload": token[:4] + ("x" if token[4] != "x" else "y") + token[5:], "garbage": "not-a-token"}[tamper]

    response = client.get(reverse("approvals:link", args=[token]))

    assert response.status_code == 400
    assert "This approval link is not valid." in _page(response)
    assert token not in _page(response)
    assert SESSION_KEY not in client.session
    assert _state(action, approval) == before


@pytest.mark.security
def test_an_expired_token_is_gone(client, team, asked, settings):
    action, approval = asked
    client = opened(client, team["aiko"])
    before = _state(action, approval)
    settings.APPROVAL_LINK_MAX_AGE = timedelta(seconds=-1)

    link = client.get(link_path(team["aiko"]))
    page = client.get(DECIDE)
    post = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert (link.status_code, page.status_code, post.status_code) == (410, 410, 410)
    assert "This approval link has expired." in _page(link)
    assert _state(action, approval) == before


@pytest.mark.security
def test_the_link_of_a_deactivated_approver_is_gone(client, team, asked):
    action, approval = asked
    path = link_path(team["aiko"])
    team["aiko"].is_active = False
    team["aiko"].save()
    before = _state(action, approval)

    response = client.get(path)

    assert response.status_code == 410
    assert "This approval link is not valid any more." in _page(response)
    assert _state(action, approval) == before


@pytest.mark.security
def test_a_link_of_an_earlier_escalation_level_is_gone(client, team, asked):
    action, approval = asked
    client = opened(client, team["aiko"])
    Approval.objects.filter(pk=approval.pk).update(level=2)
    before = _state(action, approval)

    link = client.get(link_path(team["aiko"]))
    post = client.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert (link.status_code, post.status_code) == (410, 410)
    assert "This approval was escalated" in _page(link)
    assert _state(action, approval) == before


@pytest.mark.security
def test_after_a_timeout_the_old_link_no_longer_decides_and_the_new_one_does(client, team, asked):
    action, approval = asked
    assert time_out(approval, timezone.now()) == "escalated"

    old = opened(client, team["aiko"])
    page = old.get(DECIDE)
    post = old.post(DECIDE, {"approval": approval.pk, "decision": "approve"})

    assert page.status_code in (200, 410)
    assert 'value="approve"' not in _page(page)
    assert post.status_code in (409, 410)
    assert ApprovalVote.objects.count() == 0

    new = Approval.objects.get(escalated_from=approval)
    marco = opened(Client(), team["marco"])
    assert marco.post(DECIDE, {"approval": new.pk, "decision": "approve"}).status_code == 200
    assert Action.objects.get(pk=action.pk).status == S.QUEUED


# --- The emails --------------------------------------------------------------------------------


def test_each_approver_gets_a_request_email_with_a_link_of_their_own(team, asked):
    _, approval = asked

    for name in ("aiko", "priya"):
        found, user = read_link_token(token_of(link_path(team[name])))
        assert (found, user) == (approval, team[name])
    assert link_path(team["aiko"]) != link_path(team["priya"])
    assert _messages_to(team["marco"], "Approval needed") == []


def test_the_request_email_shows_the_action_and_one_link(team, asked):
    _, approval = asked
    message = request_email(team["aiko"])
    text, html = message.text_body, message.html_body
    url = LINK.search(text).group()

    assert message.subject == f"Approval needed: Forward email {DASH} {SUBJECT}"
    assert text.startswith("Hello Aiko Tanaka,")
    for shown in [
        f"Action:      #{approval.action_id} Forward email",
        "  To: counsel@lawfirm.example",
        "  Note: For your review",
        "Proposed by: Liam OBrien",
        "Confidence:  97% (AI analysis)",
        "  The customer asks for a legal review of the draft.",
        "From:     Jo Customer <jo@customer.example>",
        f"Subject:  {SUBJECT}",
        "> please have your lawyer look at the draft.",
        "Why a person decides: The policy “Forwarding outside the company” asks for approval.",
        f"Deadline: {date_format(timezone.localtime(approval.expires_at), 'j M Y, H:i T')}",
    ]:
        assert shown in text, shown
    assert LINK.findall(text) == [url]
    assert re.findall(r'<a href="([^"]+)"', html) == [url]
    assert "Jo Customer &lt;jo@customer.example&gt;" in html
    assert "counsel@lawfirm.example" in html


@pytest.mark.security
def test_the_request_email_escapes_a_hostile_subject(team, ask, client):
    hostile = '<script>alert("x")</script> & <a href="https://evil.example">click</a>'
    ask(subject=hostile + "\r\nBcc: evil@example.com")
    message = request_email(team["aiko"])

    assert "\n" not in message.subject and "\r" not in message.subject
    assert message.subject.startswith(f'Approval needed: Forward email {DASH} <script>alert("x")</script> & <a')
    assert "<script" not in message.html_body
    assert re.findall(r'<a href="([^"]+)"', message.html_body) == [LINK.search(message.text_body).group()]
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;a href=" in message.html_body
    assert '<script>alert("x")</script> & <a href=' in message.text_body  # plain text is not HTML-escaped

    page = _page(opened(client, team["aiko"]).get(DECIDE))
    assert "<script" not in page
    assert "&lt;script&gt;" in page


def test_the_requester_is_told_the_decision_by_email(client, team, asked):
    action, approval = asked
    opened(client, team["aiko"]).post(
        DECIDE, {"approval": approval.pk, "decision": "reject", "comment": "Not without a signed NDA."}
    )

    [message] = _messages_to(team["liam"], "Rejected")

    assert message.subject == f"Rejected: Forward email {DASH} {SUBJECT}"
    assert f"#{action.pk} Forward email was rejected by Aiko Tanaka on " in message.text_body
    assert "It will not run." in message.text_body
    assert "Not without a signed NDA." in message.text_body
    assert "Not without a signed NDA." in message.html_body
    assert "approvals/" not in message.text_body + message.html_body  # no approval link in it
    assert len(re.findall(r"href=", message.html_body)) == 1
