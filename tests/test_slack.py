"""Slack: the bot (chat.postMessage) and the incoming webhook, against a loopback server speaking Slack's API.

Checked: the Block Kit messages field by field, escaping of everything that
comes from an email, Slack's limits, errors as transient or permanent with
the server's Retry-After, health checks, and that the token stays secret.
"""

from __future__ import annotations

import logging
import socket

import pytest
from django.contrib.auth import get_user_model

from actions.models import Email, Priority
from integrations import registry
from integrations.chat import NoChat, SlackBot, SlackWebhook, chat_backend, post_escalation, post_urgent
from integrations.chat.blocks import ChatNotice, clip, escape
from integrations.errors import IntegrationError, Unavailable
from teams.models import TeamMember
from tests.slack_server import CHANNEL, TOKEN, Reply, api_error, rate_limited, serve_slack, server_error

HOSTILE = "<!channel> see <http://evil.example|click here> & *bold*"


@pytest.fixture
def slack():
    with serve_slack() as server:
        yield server


@pytest.fixture
def bot(settings, slack):
    """Mailroom configured to post as the bot, to the loopback Web API."""
    settings.SLACK_BOT_TOKEN, settings.SLACK_CHANNEL, settings.SLACK_API_URL = TOKEN, CHANNEL, slack.api_url
    settings.SLACK_WEBHOOK_URL = ""
    settings.SITE_URL = "https://mailroom.acme.example"
    return slack


@pytest.fixture
def webhook(settings, slack):
    """Mailroom configured to post through the loopback incoming webhook."""
    settings.SLACK_BOT_TOKEN, settings.SLACK_WEBHOOK_URL = "", slack.webhook_url
    settings.SITE_URL = "https://mailroom.acme.example"
    return slack


@pytest.fixture
def chain(db):
    users = get_user_model().objects
    dana = users.create_user("dana", "dana@acme.example", first_name="Dana", last_name="Whitfield")
    marco = users.create_user("marco", "marco@acme.example", first_name="Marco", last_name="Rossi")
    return [TeamMember.objects.create(user=dana, role="director"), TeamMember.objects.create(user=marco)]


@pytest.fixture
def escalation(make_action, make_email):
    email = make_email(
        subject="Checkout is down", from_name="Ada Customer", from_address="ada@customer.example", text_body="Help!"
    )
    Email.objects.filter(pk=email.pk).update(priority=Priority.URGENT)
    return make_action("escalate_issue", email=email)


def notice(text: str = "A notice") -> ChatNotice:
    return ChatNotice(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def texts(post: dict) -> str:
    """Every text a posted message shows: the fallback and each block's texts, one per line."""
    shown = [post["text"]]
    for block in post["blocks"]:
        shown += [block["text"]["text"]] if "text" in block else []
        shown += [field["text"] for field in block.get("fields", [])]
    return "\n".join(shown)


# --- Posting ------------------------------------------------------------------------------------


def test_the_bot_posts_an_escalation_with_its_blocks(bot, escalation, chain):
    posted = post_escalation(escalation, chain, level=2, reason="The customer is still waiting", escalated_from="Liam")

    (request,) = bot.received
    assert request.method == "chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["content-type"].startswith("application/json")
    assert posted == {"posted": True, "backend": "slack", "channel": CHANNEL, "ts": "1700000000.000100"}
    post = request.body
    assert post["channel"] == CHANNEL and post["unfurl_links"] is False
    assert post["text"] == "Escalated to level 2: Checkout is down\nThe customer is still waiting"
    header, facts, reason, notified, actions = post["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Escalated to level 2: Checkout is down"},
    }
    assert [field["text"] for field in facts["fields"]] == [
        "*Subject*\nCheckout is down",
        "*From*\nAda Customer &lt;ada@customer.example&gt;",
        "*Priority*\nUrgent",
        f"*Action*\n#{escalation.pk} Escalate issue",
    ]
    assert reason["text"] == {"type": "mrkdwn", "text": "*Reason*\nThe customer is still waiting", "verbatim": True}
    assert notified["text"]["text"] == "*Notified*\nDana Whitfield (copied: Marco Rossi)\nEscalated from Liam."
    (button,) = actions["elements"]
    assert button["text"]["text"] == "Open in Mailroom"
    assert button["url"] == f"https://mailroom.acme.example/admin/actions/action/{escalation.pk}/change/"


def test_an_undone_escalation_says_it_was_taken_back(bot, escalation, chain):
    post_escalation(escalation, chain[:1], level=2, reason="The escalation was undone.", undo=True)
    (post,) = bot.posts()
    assert post["blocks"][0]["text"]["text"] == "De-escalated from level 2: Checkout is down"
    assert post["blocks"][3]["text"]["text"] == "*Notified*\nDana Whitfield"


def test_the_webhook_posts_the_same_blocks_without_a_token(webhook, escalation, chain):
    posted = post_escalation(escalation, chain, level=1, reason="Waiting")

    (request,) = webhook.received
    assert request.method == "webhook" and "authorization" not in request.headers
    assert posted == {"posted": True, "backend": "slack-webhook", "channel": None, "ts": None}
    assert request.body["blocks"][0]["text"]["text"] == "Escalated to level 1: Checkout is down"
    assert request.body["blocks"][-1]["elements"][0]["url"].endswith(f"/admin/actions/action/{escalation.pk}/change/")


def test_the_urgent_notice_names_the_sender_and_links_to_the_email(bot, make_email):
    email = make_email(subject="Site down", from_address="ops@customer.example", summary="The site is down.")
    post_urgent(email, ["#7 Escalate issue"])

    (post,) = bot.posts()
    assert post["blocks"][0]["text"]["text"] == "Urgent: Site down"
    assert post["blocks"][1]["text"]["text"] == "From ops@customer.example\nThe site is down.\n• #7 Escalate issue"
    assert (
        post["blocks"][2]["elements"][0]["url"]
        == f"https://mailroom.acme.example/admin/actions/email/{email.pk}/change/"
    )


def test_hostile_email_text_arrives_escaped(bot, make_action, make_email):
    email = make_email(subject=HOSTILE, from_name="<!here> Mallory", from_address="m@evil.example", text_body=HOSTILE)
    action = make_action("escalate_issue", email=email)
    post_escalation(action, [], level=1, reason=f"Because {HOSTILE}")

    (post,) = bot.posts()
    shown = texts({**post, "blocks": post["blocks"][1:]})  # the header is plain_text: Slack parses nothing there
    assert "<!" not in shown and "<http" not in shown and "& " not in shown
    assert (
        "&lt;!channel&gt; see &lt;http://evil.example|click here&gt; &amp; *bold*" in post["blocks"][2]["text"]["text"]
    )
    assert "*From*\n&lt;!here&gt; Mallory &lt;m@evil.example&gt;" in shown
    assert post["blocks"][0]["text"] == {"type": "plain_text", "text": f"Escalated to level 1: {HOSTILE}"}
    assert "*Notified*\nNobody: the escalation chain is empty." in shown


def test_long_texts_are_held_within_slacks_limits_without_breaking_an_entity(bot, make_action, make_email):
    email = make_email(subject="S" * 500, text_body="x")
    action = make_action("escalate_issue", email=email)
    post_escalation(action, [], level=3, reason="&" * 2000)  # escaped, 10,000 characters

    (post,) = bot.posts()  # the server refuses blocks over Slack's limits (invalid_blocks)
    header, facts, reason = post["blocks"][:3]
    assert len(header["text"]["text"]) == 150 and header["text"]["text"].endswith("…")
    assert len(reason["text"]["text"]) <= 3000 and reason["text"]["text"].endswith("&amp;…")
    assert all(len(field["text"]) <= 2000 for field in facts["fields"])
    assert clip(escape("a&b"), 4) == "a…"  # not "a&a…"


def test_no_chat_configured_posts_nothing_and_says_so(settings):
    settings.SLACK_BOT_TOKEN = settings.SLACK_WEBHOOK_URL = ""
    backend = chat_backend()
    assert isinstance(backend, NoChat)
    assert backend.post(notice()) == {
        "posted": False,
        "backend": "none",
        "detail": "Chat is not configured: set SLACK_BOT_TOKEN and SLACK_CHANNEL, or SLACK_WEBHOOK_URL.",
    }


def test_the_bot_is_chosen_over_the_webhook_and_needs_a_channel(settings, slack):
    settings.SLACK_BOT_TOKEN, settings.SLACK_WEBHOOK_URL, settings.SLACK_CHANNEL = TOKEN, slack.webhook_url, "#mailroom"
    assert isinstance(chat_backend(), SlackBot)
    settings.SLACK_CHANNEL = ""
    with pytest.raises(Unavailable, match="SLACK_CHANNEL is not"):
        chat_backend()
    settings.SLACK_BOT_TOKEN = ""
    assert isinstance(chat_backend(), SlackWebhook)


# --- Errors -------------------------------------------------------------------------------------


def test_a_429_is_transient_with_the_servers_retry_after(bot):
    bot.queue(rate_limited(17))
    with pytest.raises(IntegrationError) as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent and raised.value.retry_after == 17
    assert str(raised.value) == "Slack refused chat.postMessage: ratelimited (HTTP 429)"
    assert len(bot.received) == 1  # slack-sdk does not retry on its own: the executor does


def test_a_webhook_429_is_transient_with_the_servers_retry_after(webhook):
    webhook.queue(rate_limited(9, webhook=True))
    with pytest.raises(IntegrationError) as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent and raised.value.retry_after == 9


def test_a_500_is_transient(bot):
    bot.queue(server_error())
    with pytest.raises(IntegrationError, match=r"HTTP 500") as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent and raised.value.retry_after is None
    assert len(bot.received) == 1


def test_slacks_own_outage_errors_are_transient(bot):
    bot.queue(api_error("service_unavailable"))
    with pytest.raises(IntegrationError) as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent


def test_a_wrong_token_is_permanent_and_never_shown(bot, settings, caplog):
    settings.SLACK_BOT_TOKEN = "xoxb-9999-wrong-token"
    with caplog.at_level(logging.DEBUG), pytest.raises(IntegrationError) as raised:
        chat_backend().post(notice())
    assert raised.value.permanent
    assert str(raised.value) == "Slack refused chat.postMessage: invalid_auth"
    assert "xoxb" not in caplog.text and "wrong-token" not in str(raised.value)


@pytest.mark.parametrize("error", ["not_authed", "account_inactive", "missing_scope"])
def test_refusals_that_need_a_person_are_permanent(bot, error):
    bot.queue(api_error(error))
    with pytest.raises(IntegrationError, match=error) as raised:
        chat_backend().post(notice())
    assert raised.value.permanent


def test_an_unknown_channel_is_permanent(bot, settings):
    settings.SLACK_CHANNEL = "#nowhere"
    with pytest.raises(IntegrationError, match="channel_not_found") as raised:
        chat_backend().post(notice())
    assert raised.value.permanent


@pytest.mark.parametrize(("reply", "code"), [(Reply(404, "no_service"), 404), (Reply(410, "channel_is_archived"), 410)])
def test_a_webhook_that_is_gone_is_permanent(webhook, reply, code):
    webhook.queue(reply)
    with pytest.raises(IntegrationError, match=f"HTTP {code}") as raised:
        chat_backend().post(notice())
    assert raised.value.permanent and "webhooksecret" not in str(raised.value)


def test_a_webhook_500_is_transient(webhook):
    webhook.queue(server_error(503))
    with pytest.raises(IntegrationError) as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent


def test_a_dropped_connection_is_transient_and_not_retried_behind_the_executors_back(bot):
    bot.queue(Reply(hang_up=True), Reply(hang_up=True))
    with pytest.raises(IntegrationError, match=r"Could not reach Slack") as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent
    assert len(bot.received) == 1


def test_a_server_that_is_not_there_is_transient(settings):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.SLACK_BOT_TOKEN, settings.SLACK_CHANNEL = TOKEN, CHANNEL
    settings.SLACK_API_URL = f"http://127.0.0.1:{port}/api"
    with pytest.raises(IntegrationError, match=r"Could not reach Slack for chat\.postMessage") as raised:
        chat_backend().post(notice())
    assert not raised.value.permanent


# --- Health -------------------------------------------------------------------------------------


def test_the_bots_health_asks_auth_test(bot):
    health = registry.check("chat")
    assert health.ok and health.backend == "slack"
    assert health.detail == f"Signed in to Acme as mailroom; posts to {CHANNEL}."
    assert [request.method for request in bot.received] == ["auth.test"]


def test_the_bots_health_with_a_bad_token_is_unhealthy_and_keeps_it_secret(bot, settings):
    settings.SLACK_BOT_TOKEN = "xoxb-9999-wrong-token"
    health = registry.check("chat")
    assert not health.ok and health.detail == "Slack refused auth.test: invalid_auth"


def test_the_webhooks_health_does_not_post(webhook):
    health = registry.check("chat")
    assert health.ok and health.backend == "slack-webhook" and "not probed" in health.detail
    assert webhook.received == []


def test_no_chat_is_healthy(settings):
    settings.SLACK_BOT_TOKEN = settings.SLACK_WEBHOOK_URL = ""
    assert registry.check("chat").ok


def test_a_bot_without_a_channel_is_unhealthy(settings):
    settings.SLACK_BOT_TOKEN, settings.SLACK_CHANNEL = TOKEN, ""
    health = registry.check("chat")
    assert not health.ok and "SLACK_CHANNEL" in health.detail and TOKEN not in health.detail
