"""escalate_issue in Slack: the escalation chain is told in chat as well as by email, once per action.

Against the loopback Slack of tests/slack_server.py, with the bot token.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from actions.executor import queue_action, run_action
from actions.models import Action, AuditEntry, Email
from integrations.errors import IntegrationError
from integrations.models import CallOutcome, Circuit, CircuitState, IntegrationCalls
from tests.slack_server import CHANNEL, TOKEN, api_error, rate_limited, serve_slack, server_error
from tests.test_handlers_local import act, run, sent, team, undo  # noqa: F401 - fixtures

REASON = "Charged twice, third email"


@pytest.fixture
def slack(settings):
    with serve_slack() as server:
        settings.SLACK_BOT_TOKEN, settings.SLACK_CHANNEL, settings.SLACK_API_URL = TOKEN, CHANNEL, server.api_url
        settings.SLACK_WEBHOOK_URL = ""
        yield server


@pytest.fixture
def escalation(team, act, sent):  # noqa: F811 - the fixtures imported above
    return act("escalate_issue", {"reason": REASON}, assignee=team["liam"])


def shown(post: dict) -> str:
    return "\n".join([post["text"], *(block["text"]["text"] for block in post["blocks"] if "text" in block)])


def test_an_escalation_is_posted_to_the_channel_with_the_reason(slack, escalation, sent):  # noqa: F811
    outcome = run(escalation)
    [post] = slack.posts()
    assert post["channel"] == CHANNEL
    assert REASON in shown(post)
    assert "level 1" in shown(post).lower()
    assert outcome.result["chat"]["posted"] is True
    assert outcome.result["chat"]["channel"] == CHANNEL
    assert len(sent) == 1  # the email to the chain still goes


def test_an_escalation_run_again_is_not_posted_again(slack, escalation):
    first, second = run(escalation), run(escalation)
    assert len(slack.posts()) == 1
    assert first.result["chat"] == second.result["chat"]


def test_a_rate_limited_post_retries_the_action_without_escalating_twice(slack, escalation):
    slack.queue(rate_limited(seconds=7))
    with pytest.raises(IntegrationError) as raised:
        run(escalation)
    assert (raised.value.permanent, raised.value.retry_after, raised.value.capability) == (False, 7, "chat")
    outcome = run(escalation)
    assert Email.objects.get(pk=escalation.email_id).escalation_level == 1
    assert outcome.result["chat"]["posted"] is True
    assert len(slack.posts()) == 2  # the refused one and the one that went


def test_a_refused_token_is_recorded_without_failing_the_escalation(slack, escalation):
    slack.queue(api_error("invalid_auth"))
    outcome = run(escalation)
    assert outcome.result["chat"]["posted"] is False
    assert "invalid_auth" in outcome.result["chat"]["error"]
    assert TOKEN not in outcome.result["chat"]["error"]
    assert AuditEntry.objects.for_object(escalation).filter(event="escalation.chat").count() == 1


def test_undoing_an_escalation_says_so_in_the_channel(slack, escalation):
    details = undo(escalation, run(escalation))
    _escalated, taken_back = slack.posts()
    assert "de-escalated" in shown(taken_back).lower()
    assert details["chat"]["posted"] is True


def test_without_chat_the_escalation_says_it_was_not_posted(settings, escalation):
    settings.SLACK_BOT_TOKEN = settings.SLACK_WEBHOOK_URL = ""
    assert run(escalation).result["chat"]["posted"] is False


def counted(name: str) -> dict[str, int]:
    return dict(IntegrationCalls.objects.filter(capability=name).values_list("outcome", "count"))


def test_slack_down_opens_the_chat_circuit_and_leaves_mail_alone(slack, team, act, sent, settings):  # noqa: F811
    settings.CIRCUIT_FAILURE_THRESHOLD = 2
    slack.queue(server_error(503), server_error(503))
    escalations = [
        queue_action(act("escalate_issue", {"reason": REASON}, assignee=team["liam"]), actor="test") for _ in range(3)
    ]
    assert [run_action(action.pk) for action in escalations[:2]] == ["failed", "failed"]
    # The chain was told by email each time: Slack's failures are chat's, and the mail server worked.
    assert len(sent) == 2
    assert Circuit.objects.get(name="chat").state == CircuitState.OPEN
    assert not Circuit.objects.filter(name="mail").exists()
    assert (counted("chat"), counted("mail")) == ({CallOutcome.FAILURE: 2}, {CallOutcome.SUCCESS: 2})
    assert run_action(escalations[2].pk) == "circuit chat open"

    # The cool-down is over and Slack answers its health check: the escalation goes through and closes it.
    Circuit.objects.filter(name="chat").update(opened_until=timezone.now())
    Action.objects.filter(pk=escalations[2].pk).update(next_attempt_at=None)
    assert run_action(escalations[2].pk) == "succeeded"
    assert Circuit.objects.get(name="chat").state == CircuitState.CLOSED
    assert counted("chat") == {CallOutcome.FAILURE: 2, CallOutcome.SUCCESS: 1}


def test_only_the_integrations_an_escalation_called_count(settings, team, act, sent):  # noqa: F811
    settings.SLACK_BOT_TOKEN = settings.SLACK_WEBHOOK_URL = ""
    told = queue_action(act("escalate_issue", {"reason": REASON}, assignee=team["liam"]), actor="test")
    at_the_top = queue_action(act("escalate_issue", {"reason": REASON}, assignee=team["dana"]), actor="test")
    assert [run_action(told.pk), run_action(at_the_top.pk)] == ["succeeded", "succeeded"]
    # One notice by email, nobody above Dana to tell, and no chat to post to.
    assert len(sent) == 1
    assert (counted("mail"), counted("chat")) == ({CallOutcome.SUCCESS: 1}, {})
