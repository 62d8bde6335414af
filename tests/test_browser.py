"""End to end in Chromium: an approver decides from the emailed link, and in bulk in the admin.

The browser, screenshots and login are tests/browser.py's (its docstring says
how Playwright and the database share the test's thread).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.shortcuts import resolve_url

from actions.executor import run_action
from actions.models import Action, ActionStatus
from actions.proposals import propose_action
from approvals.models import Approval, ApprovalStatus, ApprovalVote
from approvals.routing import route_action
from integrations.models import OutboxMessage
from teams.directory import import_directory
from teams.models import TeamMember
from tests.browser import log_in
from tests.team_data import TEAM

pytestmark = [
    pytest.mark.slow,
    # The live server starts before conftest's per-test settings point STATIC_ROOT away, and
    # WhiteNoise warns that the folder collectstatic would fill is missing. Static files are
    # served by the live server's own handler here.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

PASSWORD = "aiko-password"
# Outside the company, so a lead must approve; an allowed domain, so the approved forward may run.
PARTNER = "auditor@partner.example"


@pytest.fixture(autouse=True)
def _settings(settings, live_site):
    settings.INTERNAL_DOMAINS = ["acme.example"]
    settings.ALLOWED_RECIPIENT_DOMAINS = ["partner.example"]
    settings.SEND_DELAY_SECONDS = 0


@pytest.fixture
def aiko(transactional_db):
    """A lead, one of the approvers of forwards outside the company, with a password and the admin's access."""
    # The live server needs a real commit, so each test here ends with a flush that empties
    # every table; a flush before this test may have taken the shipped policies away.
    import_module("approvals.migrations.0003_default_policies").add_defaults(apps, None)
    import_directory({"members": TEAM})
    user = TeamMember.objects.get(user__email="aiko@acme.example").user
    user.set_password(PASSWORD)
    user.is_staff = True
    user.save()
    codenames = ["view_approval", "change_approval"]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="approvals", codename__in=codenames))
    return user


@pytest.fixture
def forward_to_partner(aiko, make_email) -> Callable[[], Approval]:
    def make() -> Approval:
        action = propose_action("forward_email", email=make_email(), params={"to": [PARTNER]})
        route_action(action)
        return Approval.objects.get(action=action, status=ApprovalStatus.PENDING)

    return make


def emailed_link(approval: Approval, user) -> str:
    """The decision link in the approval request mailed to `user`, as its plain-text body has it."""
    message = OutboxMessage.objects.get(to=[user.email], message_id__contains=f"approval-{approval.pk}-{user.pk}")
    (link,) = [word for word in message.text_body.split() if word.startswith("http") and "/approvals/" in word]
    return link


def action_status(approval: Approval) -> str:
    return Action.objects.get(pk=approval.action_id).status


def decide_from_the_emailed_link(
    chromium, screenshot, live_server, aiko, approval: Approval, decision: str, comment: str
) -> None:
    """As aiko: open the link from her mail, log in when asked, check the page shows the action, and decide."""
    link = emailed_link(approval, aiko)
    assert link.startswith(live_server.url)
    login_url = resolve_url(django_settings.LOGIN_URL)
    action = approval.action
    with chromium() as page:
        page.goto(link)
        # The link alone never decides: it asks who is there first.
        assert page.url.startswith(live_server.url + login_url), page.url
        screenshot(page, "1-login")
        log_in(page, aiko.username, PASSWORD)
        assert page.url.startswith(f"{live_server.url}/approvals/decide/"), page.url
        text = page.inner_text("body")
        assert action.get_type_display().lower() in text.lower()
        screenshot(page, "2-confirmation")
        page.fill("textarea[name=comment]", comment)
        page.click(f"button[name=decision][value={decision}]")
        page.wait_for_load_state()
        screenshot(page, "3-decided")


def test_an_approver_approves_from_the_emailed_link_and_the_action_runs(
    chromium, screenshot, live_server, aiko, forward_to_partner
):
    approval = forward_to_partner()
    decide_from_the_emailed_link(chromium, screenshot, live_server, aiko, approval, "approve", "Fine, they audit us")
    approval.refresh_from_db()
    assert (approval.status, action_status(approval)) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
    vote = ApprovalVote.objects.get(approval=approval)
    assert (vote.voter, vote.decision, vote.comment) == (aiko, "approve", "Fine, they audit us")
    assert run_action(approval.action_id) == "succeeded"
    assert action_status(approval) == ActionStatus.SUCCEEDED


def test_an_approver_rejects_from_the_emailed_link_and_the_action_never_runs(
    chromium, screenshot, live_server, aiko, forward_to_partner
):
    approval = forward_to_partner()
    decide_from_the_emailed_link(chromium, screenshot, live_server, aiko, approval, "reject", "Not to them")
    approval.refresh_from_db()
    assert (approval.status, action_status(approval)) == (ApprovalStatus.REJECTED, ActionStatus.REJECTED)
    assert ApprovalVote.objects.get(approval=approval).comment == "Not to them"
    assert run_action(approval.action_id) == "not queued"
    assert action_status(approval) == ActionStatus.REJECTED


def test_an_approver_approves_two_at_once_in_the_admin(chromium, screenshot, live_server, aiko, forward_to_partner):
    first, second, untouched = forward_to_partner(), forward_to_partner(), forward_to_partner()
    with chromium() as page:
        page.goto(f"{live_server.url}/admin/approvals/approval/")
        log_in(page, aiko.username, PASSWORD)
        assert page.url == f"{live_server.url}/admin/approvals/approval/", page.url
        for approval in (first, second):
            page.check(f"input[name=_selected_action][value='{approval.pk}']")
        page.select_option("select[name=action]", label="Approve selected")
        page.fill("input[name=comment]", "Both fine, they are our auditors")
        screenshot(page, "1-selected")
        page.click("button[name=index]")
        page.wait_for_load_state()
        assert "Approved 2 approvals; their actions are queued." in page.inner_text("ul.messagelist")
        screenshot(page, "2-approved")
    for approval in (first, second):
        approval.refresh_from_db()
        assert (approval.status, action_status(approval)) == (ApprovalStatus.APPROVED, ActionStatus.QUEUED)
        vote = ApprovalVote.objects.get(approval=approval)
        assert (vote.voter, vote.comment, vote.via) == (aiko, "Both fine, they are our auditors", "admin")
    untouched.refresh_from_db()
    assert (untouched.status, action_status(untouched)) == (ApprovalStatus.PENDING, ActionStatus.PENDING_APPROVAL)


def test_an_approver_rejects_on_the_approval_page_in_the_admin(
    chromium, screenshot, live_server, aiko, forward_to_partner
):
    approval = forward_to_partner()
    with chromium() as page:
        page.goto(f"{live_server.url}/admin/approvals/approval/{approval.pk}/change/")
        log_in(page, aiko.username, PASSWORD)
        page.fill("#approval_decision_form textarea[name=comment]", "Wrong partner")
        screenshot(page, "1-approval-page")
        page.click("#approval_decision_form button[name=decision][value=reject]")
        page.wait_for_load_state()
        assert "Rejected 1 approval." in page.inner_text("ul.messagelist")
        assert page.locator("#approval_decision_form").count() == 0
        screenshot(page, "2-rejected-with-the-vote")
    approval.refresh_from_db()
    assert (approval.status, action_status(approval)) == (ApprovalStatus.REJECTED, ActionStatus.REJECTED)
    vote = ApprovalVote.objects.get(approval=approval)
    assert (vote.voter, vote.decision, vote.comment, vote.via) == (aiko, "reject", "Wrong partner", "admin")
