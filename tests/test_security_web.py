"""Approval links, the API and the audit trail under attack: the cases the resource suites leave open.

The links' own suite (tests/test_approval_links.py) covers tampering, replay
in one session, expiry, GET and HEAD on the link, CSRF on the decide page;
this adds scanners that follow the redirect, tokens from elsewhere, and a
replay in another browser after the decision. For the API: every route of
the URLconf walked by every persona against objects they may not see, CSRF
under session authentication, throttled clients and strangers. For the
trail: the ways around `AuditEntry.save()` in the ORM itself.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.core import signing
from django.core.cache import cache
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from actions.audit import record_audit
from actions.executor import undo_token
from actions.models import Action, AuditEntry, Email, ExecutionSwitch, ProcessingRun
from actions.models.audit import AuditEntryIsAppendOnly
from actions.transitions import transition_action
from approvals.decisions import LINK_SALT
from approvals.models import Approval, ApprovalStatus, ApprovalVote
from approvals.views import SESSION_KEY
from tests.api_people import client_for
from tests.test_approval_links import DECIDE, _settings, ask, asked, link_path, team  # noqa: F401 - fixtures
from tests.test_intake import message

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("media")]


@pytest.fixture(autouse=True)
def _fresh_throttle():
    # Throttle counts live in the cache, which outlives a test.
    cache.clear()


def decided_state() -> tuple:
    """Everything a decision, a change or an edit of the trail would move."""
    return (
        sorted(Action.objects.values_list("pk", "status")),
        sorted(Approval.objects.values_list("pk", "status")),
        sorted(ProcessingRun.objects.values_list("pk", "status")),
        ApprovalVote.objects.count(),
        ExecutionSwitch.objects.values_list("paused", flat=True).first(),
        sorted(AuditEntry.objects.values_list("pk", "event")),
    )


# --- Approval links -----------------------------------------------------------------------------


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "as-the-approver"])
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_scanner_following_the_link_to_the_decide_page_decides_nothing(team, asked, method, logged_in):  # noqa: F811
    client = Client()
    if logged_in:
        client.force_login(team["aiko"])
    before = decided_state()

    opened_link = getattr(client, method)(link_path(team["aiko"]), follow=True)
    again = getattr(client, method)(DECIDE)

    assert opened_link.redirect_chain[0] == (DECIDE, 302)
    # The approver sees the page; a stranger's scanner is sent to the login page.
    assert again.status_code == (200 if logged_in else 302)
    assert decided_state() == before


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda approval, user: undo_token(approval.action), id="an-undo-token"),
        pytest.param(
            lambda approval, user: signing.TimestampSigner(salt="another.purpose").sign_object(
                {"a": approval.pk, "u": user.pk, "l": approval.level}
            ),
            id="another-salt",
        ),
        pytest.param(
            lambda approval, user: signing.TimestampSigner(key="not-our-secret-key", salt=LINK_SALT).sign_object(
                {"a": approval.pk, "u": user.pk, "l": approval.level}
            ),
            id="another-key",
        ),
    ],
)
def test_a_token_signed_for_another_purpose_or_with_another_key_is_no_link(client, team, asked, forge):  # noqa: F811
    _, approval = asked
    before = decided_state()

    response = client.get(reverse("approvals:link", args=[forge(approval, team["aiko"])]))

    assert response.status_code == 400
    assert SESSION_KEY not in client.session
    assert decided_state() == before


def test_a_link_replayed_in_another_browser_after_the_decision_changes_nothing(team, asked, settings):  # noqa: F811
    # The weakest setting: the link alone decides, no login asked.
    settings.APPROVAL_LINK_REQUIRES_LOGIN = False
    _, approval = asked
    first = Client()
    first.get(link_path(team["aiko"]))
    assert first.post(DECIDE, {"approval": approval.pk, "decision": "approve"}).status_code == 200
    before = decided_state()

    replay = Client()
    replay.get(link_path(team["aiko"]))
    page = replay.get(DECIDE)
    post = replay.post(DECIDE, {"approval": approval.pk, "decision": "reject"})

    assert 'value="reject"' not in page.content.decode()
    assert post.status_code == 409
    assert decided_state() == before
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.APPROVED


# --- The API: every route, every persona ---------------------------------------------------------


def api_routes() -> list[tuple[str, str, str]]:
    """(path template, method, view action) for every route under /api/v1/, read from the URLconf."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and prefix.startswith("api/v1/"):
                path = "/" + (prefix + str(pattern.pattern)).replace("^", "").replace("$", "")
                path = re.sub(r"\(\?P<pk>[^)]+\)", "{pk}", path)
                for method, action in (getattr(pattern.callback, "actions", None) or {"get": "get"}).items():
                    found.append((path, method, action))

    walk(get_resolver().url_patterns, "")
    return found


ROUTES = api_routes()
# The object of each resource that only the owner may see, by the world's names; team: the outsider's case.
HIDDEN = {
    "emails": "other_email",
    "actions": "other_action",
    "approvals": "other_approval",
    "runs": "other_run",
    "audit": "other_entry",
    "team": "a_member",
}
BODIES = {"decide": {"decision": "approve"}, "approve": {}, "reject": {}, "pause": {"reason": "x"}}


@pytest.fixture
def hidden(world) -> dict:
    """One object per resource that the member, the approver and the outsider may not see."""
    transition_action(world.other_action, "pending_approval", actor="test")
    run = ProcessingRun.objects.create(email=world.other_email)
    Action.objects.filter(pk=world.other_action.pk).update(run=run)
    return {
        "other_email": world.other_email,
        "other_action": world.other_action,
        "other_approval": Approval.objects.create(action=world.other_action, expires_at=world.approval.expires_at),
        "other_run": run,
        "other_entry": record_audit("action.noted", target=world.other_action),
        "a_member": world.member.team_member,
    }


def test_every_api_route_is_walked():
    resources = {path.split("/")[3] for path, _, _ in ROUTES}
    assert set(HIDDEN) <= resources
    assert any(path.endswith("{pk}/decide/") for path, _, _ in ROUTES)


@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
def test_no_persona_reaches_or_changes_what_it_may_not_see_through_any_route(world, hidden, persona):
    client = client_for(getattr(world, persona))
    before = decided_state()
    tried = 0
    for path, method, action in ROUTES:
        resource = path.split("/")[3]
        if "{pk}" not in path or resource not in HIDDEN:
            continue
        if resource == "team" and persona != "outsider":
            continue  # the team sees the team
        target = hidden[HIDDEN[resource]]
        response = getattr(client, method)(path.format(pk=target.pk), BODIES.get(action, {}), format="json")
        tried += 1
        assert response.status_code == 404, (persona, method, path, response.status_code)
        # Nor may it edit through a method the route does not offer.
        for verb in ("put", "patch", "delete"):
            assert getattr(client, verb)(path.format(pk=target.pk), {}, format="json").status_code in (403, 404, 405)
    assert decided_state() == before
    assert tried >= 15


@pytest.mark.parametrize("persona", ["member", "approver", "outsider"])
def test_no_persona_creates_switches_or_counts_without_the_permission(world, persona):
    client = client_for(getattr(world, persona))
    before = decided_state()
    responses = [
        client.post("/api/v1/actions/", {"type": "archive_email", "email": world.member_email.pk}, format="json"),
        client.post("/api/v1/emails/", {"from": "x@y.example", "text": "hi"}, format="json"),
        client.post("/api/v1/execution/pause/", {"reason": "x"}, format="json"),
        client.post("/api/v1/execution/resume/", {}, format="json"),
        client.get("/api/v1/stats/"),
    ]
    assert [response.status_code for response in responses] == [403] * 5
    assert decided_state() == before


def test_session_authentication_needs_the_csrf_token_to_change_anything(world):
    transition_action(world.approval_action, "pending_approval", actor="test")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.approver)
    decide = f"/api/v1/approvals/{world.approval.pk}/decide/"
    before = decided_state()

    forged = client.post(decide, {"decision": "approve"}, format="json")

    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    assert decided_state() == before
    # Reading needs no token; the page's own script sends it back in the header.
    assert client.get(f"/api/v1/approvals/{world.approval.pk}/").status_code == 200
    client.cookies["csrftoken"] = token = "a" * 32
    assert client.post(decide, {"decision": "approve"}, format="json", HTTP_X_CSRFTOKEN=token).status_code == 200
    assert ApprovalVote.objects.count() == 1


def test_a_throttled_client_decides_nothing_and_is_told_when_to_come_back(world, monkeypatch):
    # DRF reads the rates once, when the throttle class is defined: set them there.
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "3/minute"})
    transition_action(world.approval_action, "pending_approval", actor="test")
    approver = client_for(world.approver)
    assert [approver.get("/api/v1/approvals/").status_code for _ in range(3)] == [200, 200, 200]
    before = decided_state()

    response = approver.post(f"/api/v1/approvals/{world.approval.pk}/decide/", {"decision": "approve"}, format="json")

    assert response.status_code == 429 and int(response["Retry-After"]) > 0
    assert decided_state() == before
    # The limit is the client's own: someone else goes on.
    assert client_for(world.owner).get("/api/v1/approvals/").status_code == 200


def test_strangers_are_refused_before_they_are_counted_and_throttled_where_they_may_read(db, monkeypatch):
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "1/minute", "anon": "1/minute"})
    stranger = APIClient()
    # Permissions come before throttles: whatever the rate, a stranger learns nothing but "sign in".
    assert [stranger.get("/api/v1/actions/").status_code for _ in range(3)] == [401, 401, 401]
    # The schema is public, so the anonymous rate applies to it.
    assert stranger.get("/api/schema/").status_code == 200
    limited = stranger.get("/api/schema/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0


def test_a_nul_in_the_mailbox_of_a_raw_post_is_refused_and_nothing_stored(world):
    # The JSON form's fields refuse a NUL; the raw form's ?mailbox= reached PostgreSQL, which refuses it (500).
    world.owner.user_permissions.add(Permission.objects.get(codename="add_email"))
    client = client_for(world.owner)
    emails = Email.objects.count()

    response = client.post(
        "/api/v1/emails/?mailbox=sup%00port@acme.example", data=message(), content_type="message/rfc822"
    )

    assert response.status_code == 400 and "mailbox" in response.json()
    assert Email.objects.count() == emails


# --- The audit trail: the ways around save() -------------------------------------------------------


@pytest.fixture
def entry(db) -> AuditEntry:
    return record_audit("action.approved", actor="petra", details={"via": "email link"})


def test_save_base_cannot_rewrite_an_entry(entry):
    loaded = AuditEntry.objects.get(pk=entry.pk)
    loaded.event = "action.rejected"
    # In a transaction of its own, as any caller's: a refused save marks the one it is in for rollback.
    with pytest.raises(AuditEntryIsAppendOnly), transaction.atomic():
        loaded.save_base()
    assert AuditEntry.objects.get(pk=entry.pk).event == "action.approved"


def test_loaddata_cannot_overwrite_an_entry_and_still_restores_a_missing_one(entry, tmp_path):
    fields = {"created_at": "2026-01-01T00:00:00Z", "actor_label": "mallory", "event": "made.up", "details": {}}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps([{"model": "actions.auditentry", "pk": entry.pk, "fields": fields}]))
    restored = tmp_path / "restored.json"
    restored.write_text(json.dumps([{"model": "actions.auditentry", "pk": entry.pk + 1000, "fields": fields}]))

    with pytest.raises(AuditEntryIsAppendOnly):
        call_command("loaddata", str(forged), verbosity=0)
    call_command("loaddata", str(restored), verbosity=0)

    assert AuditEntry.objects.get(pk=entry.pk).event == "action.approved"
    assert AuditEntry.objects.get(pk=entry.pk + 1000).event == "made.up"


def test_the_base_manager_cannot_edit_or_delete_the_trail(entry):
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry._base_manager.filter(pk=entry.pk).update(event="made.up")
    with pytest.raises(AuditEntryIsAppendOnly):
        AuditEntry._base_manager.filter(pk=entry.pk).delete()
