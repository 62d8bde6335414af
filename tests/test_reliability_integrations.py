"""Reliability: every integration goes down under running workers, then comes back, and nothing is lost or repeated.

Workers run a batch whose actions use each outside system: mail (SMTP),
tasks (Jira), chat (Slack, for escalations), calendar and reminders (CalDAV
on Radicale) and the mailbox (IMAP on Dovecot). All of them are down when
the batch starts (tests/outages.py says how each fails). Each circuit must
open, and then hold its actions without spending their attempts while its
system stays down; once everything is back the circuits must close and
every action succeed within three attempts, each of its effects made once
at its peer.

Each failure is charged to the system that failed: an escalation that Slack
refuses opens the chat circuit, not the mail one, so Slack down alone holds
the escalations and lets every reply go out.
"""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from actions.executor import queue_action
from actions.models import Action, ActionStatus, Email
from actions.proposals import propose_action
from actions.sweeper import sweep
from integrations.imap import poll_mailbox
from integrations.models import CallOutcome, Circuit, CircuitState, IntegrationCalls, OutboxMessage, OutboxStatus
from tests.dovecot import DovecotAccount, DovecotServer
from tests.outages import JiraPeer, Peer, ProcessPeer, SmtpPeer, serving_slack
from tests.processes import serving, wait_for
from tests.radicale import RadicaleAccount, RadicaleServer
from tests.slack_server import CHANNEL, TOKEN
from tests.task_servers import JIRA_TOKEN, serve
from tests.test_imap import message
from tests.workers import all_final, clean_queues, propose_and_queue, statuses, worker_starter

pytestmark = [pytest.mark.slow, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]
S = ActionStatus

# Escalations and meetings first: they wait on the mail circuit as well as on chat and calendar (they mail
# the chain, the invitations), so they must reach Slack and CalDAV before the replies open it.
BATCH = {"escalate_issue": 4, "schedule_meeting": 4, "send_reply": 8, "create_task": 8, "set_reminder": 4}
ARCHIVED = 4  # archive_email actions, on messages polled in from Dovecot
CIRCUITS = {"mail", "tasks", "calendar", "reminders", "mailbox", "chat"}
COOLDOWN = 2  # CIRCUIT_COOLDOWN_SECONDS of the workers
# Attempts per action: without the circuits, the outage would spend these within seconds (1-2 s backoff).
RETRY_LIMIT = 3
JIRA_USER = "mailroom@acme.example"


@pytest.fixture(autouse=True)
def _queues(settings):
    yield from clean_queues(settings)


# Each peer is one a test can take down and bring back (tests/outages.py); the Jira and
# Slack here stand in for the suites' own fixtures of those names.
@pytest.fixture
def smtp(settings):
    peer = SmtpPeer()
    settings.EMAIL_HOST, settings.EMAIL_PORT = peer.handler.host, peer.handler.port
    yield peer
    peer.close()


@pytest.fixture
def start_worker(tmp_path, smtp):
    yield from worker_starter(tmp_path, smtp.handler)


@pytest.fixture
def jira(settings):
    yield from serve(JiraPeer(JIRA_USER, JIRA_TOKEN), settings)


@pytest.fixture
def slack():
    yield from serving_slack()


# Servers of this test's own, not the session's: they are stopped mid-test.
@pytest.fixture
def own_radicale():
    yield from serving(RadicaleServer())


@pytest.fixture
def own_dovecot():
    yield from serving(DovecotServer())


@pytest.fixture
def calendar(own_radicale) -> RadicaleAccount:
    account = RadicaleAccount(own_radicale, own_radicale.add_user())
    account.make_calendar()
    return account


@pytest.fixture
def mailbox(own_dovecot) -> DovecotAccount:
    return DovecotAccount(own_dovecot, own_dovecot.add_user())


def worker_env(jira: JiraPeer, calendar: RadicaleAccount, mailbox: DovecotAccount) -> dict[str, str]:
    """Every integration pointed at its peer, circuits that open after two failures in a row."""
    return {
        "RETRY_LIMIT": str(RETRY_LIMIT),
        "CIRCUIT_FAILURE_THRESHOLD": "2",
        "CIRCUIT_COOLDOWN_SECONDS": str(COOLDOWN),
        "INTEGRATION_TIMEOUT_SECONDS": "5",
        "TASK_BACKEND": "jira",
        "JIRA_URL": jira.url,
        "JIRA_EMAIL": JIRA_USER,
        "JIRA_API_TOKEN": JIRA_TOKEN,
        "JIRA_PROJECT_KEY": JiraPeer.PROJECT,
        "JIRA_ISSUE_TYPE": "Task",
        "CALDAV_URL": calendar.server.url,
        "CALDAV_USERNAME": calendar.user,
        "CALDAV_PASSWORD": calendar.password,
        "CALDAV_CALENDAR": "Work",
        "CALDAV_TIMEOUT_SECONDS": "5",
        "CALENDAR_BACKEND": "caldav",
        "REMINDER_BACKEND": "caldav",
        "MAILBOX_BACKEND": "imap",
        "IMAP_HOST": mailbox.host,
        "IMAP_PORT": str(mailbox.port),
        "IMAP_SSL": "false",
        "IMAP_USER": mailbox.user,
        "IMAP_PASSWORD": mailbox.password,
        "IMAP_ARCHIVE_FOLDER": "Archive",
        "IMAP_TIMEOUT_SECONDS": "5",
    }


def polled_in(account: DovecotAccount, settings, count: int) -> list[Email]:
    """`count` customers' messages delivered to the account's INBOX and polled in, as in production."""
    settings.PROCESS_ON_INTAKE = False
    account.settings(settings)
    for n in range(1, count + 1):
        account.append("INBOX", message(n))
    poll_mailbox()
    return list(Email.objects.filter(imap_uid__isnull=False).order_by("pk"))


def queue_archiving(emails: list[Email]) -> list[Action]:
    with transaction.atomic():
        return [queue_action(propose_action("archive_email", email=email), actor="test") for email in emails]


def test_every_integration_down_for_a_while_then_back_loses_nothing_and_repeats_nothing(
    start_worker, smtp, jira, slack, calendar, mailbox, settings, capsys
):
    settings.RETRY_LIMIT = RETRY_LIMIT
    to_archive = polled_in(mailbox, settings, ARCHIVED)
    peers: list[Peer] = [smtp, jira, slack, ProcessPeer(calendar.server), ProcessPeer(mailbox.server)]
    for peer in peers:
        peer.go_down()
    actions = propose_and_queue([kind for kind, count in BATCH.items() for _ in range(count)])
    actions += queue_archiving(to_archive)
    ours = Action.objects.filter(pk__in=[a.pk for a in actions])
    seen: dict[str, set[str]] = {}

    def watch() -> None:
        for name, state in Circuit.objects.values_list("name", "state"):
            seen.setdefault(name, set()).add(state)
        sweep()

    began = time.monotonic()
    worker = start_worker(
        workers=2,
        SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_CHANNEL=CHANNEL,
        **worker_env(jira, calendar, mailbox),
    )
    all_open = wait_for(lambda: all(CircuitState.OPEN in seen.get(name, ()) for name in CIRCUITS), then=watch)
    assert all_open, f"circuits seen: {seen}\n{worker.output()[-3000:]}"
    # Still down for two more cool-downs: the health checks keep the circuits open, and no attempt is spent.
    attempts_when_open = sum(ours.values_list("attempts", flat=True))
    wait_for(lambda: False, timeout=2 * COOLDOWN, then=watch)
    attempts_while_open = sum(ours.values_list("attempts", flat=True)) - attempts_when_open
    down_for = time.monotonic() - began

    for peer in peers:
        peer.come_back()
    done = wait_for(lambda: all_final(actions), timeout=90, every=0.3, then=watch)
    assert done, f"{statuses(actions)}\n{worker.output()[-3000:]}"
    took = time.monotonic() - began

    attempts = dict(ours.values_list("pk", "attempts"))
    failures = dict(IntegrationCalls.objects.filter(outcome=CallOutcome.FAILURE).values_list("capability", "count"))
    with capsys.disabled():
        print(
            f"\n  outage: {len(actions)} actions, all {len(peers)} systems down {down_for:.1f} s; "
            f"transient failures by circuit {failures}; {attempts_while_open} attempts spent while open; "
            f"attempts per action max {max(attempts.values())}, total {sum(attempts.values())}; "
            f"refused while down: Jira {jira.refused}, Slack {slack.refused}; {took:.1f} s"
        )
    # Nothing lost, within the retry limits.
    assert statuses(actions) == {S.SUCCEEDED: len(actions)}
    assert max(attempts.values()) <= RETRY_LIMIT
    assert attempts_while_open == 0
    # The circuits opened while their systems were down, and closed once they were back.
    assert all(failures.get(name, 0) > 0 for name in CIRCUITS), failures
    assert jira.refused > 0 and slack.refused > 0
    assert dict(Circuit.objects.filter(name__in=CIRCUITS).values_list("name", "state")) == dict.fromkeys(
        CIRCUITS, CircuitState.CLOSED
    )
    # Each effect once, at its peer.
    assert_each_effect_once(smtp, jira, slack, calendar, mailbox)


def test_slack_down_alone_holds_the_escalations_and_no_mail(start_worker, smtp, slack, settings):
    settings.RETRY_LIMIT = RETRY_LIMIT
    slack.go_down()
    escalations = propose_and_queue(["escalate_issue"] * 4)
    seen: dict[str, set[str]] = {}

    def watch() -> None:
        for name, state in Circuit.objects.values_list("name", "state"):
            seen.setdefault(name, set()).add(state)
        sweep()

    worker = start_worker(
        workers=2,
        SLACK_API_URL=slack.api_url,
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_CHANNEL=CHANNEL,
        RETRY_LIMIT=str(RETRY_LIMIT),
        CIRCUIT_FAILURE_THRESHOLD="2",
        CIRCUIT_COOLDOWN_SECONDS=str(COOLDOWN),
    )
    assert wait_for(lambda: CircuitState.OPEN in seen.get("chat", ()), then=watch), worker.output()[-3000:]
    replies = propose_and_queue(["send_reply"] * 8)
    # Mail is up: replies go out while Slack is still down, and the escalations wait for Slack.
    assert wait_for(lambda: statuses(replies) == {S.SUCCEEDED: 8}, timeout=60, then=watch), statuses(replies)
    wait_for(lambda: False, timeout=3 * COOLDOWN, then=watch)  # Slack down for several more cool-downs
    slack.come_back()
    assert wait_for(lambda: all_final(escalations), timeout=60, then=watch), statuses(escalations)

    assert statuses(escalations) == {S.SUCCEEDED: 4}
    assert seen.get("mail", {CircuitState.CLOSED}) == {CircuitState.CLOSED}
    assert Circuit.objects.get(name="chat").state == CircuitState.CLOSED
    assert max(Action.objects.filter(pk__in=[a.pk for a in escalations]).values_list("attempts", flat=True)) <= 2
    assert len(slack.posts()) == 4


def assert_each_effect_once(smtp, jira, slack, calendar, mailbox) -> None:
    outbox = set(OutboxMessage.objects.values_list("message_id", flat=True))
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxStatus.SENT}
    sent = smtp.handler.message_id_counts()
    assert set(sent) == outbox and max(sent.values()) == 1, sent
    issues = jira.ids()
    assert len(issues) == BATCH["create_task"]
    assert len({label for key in issues for label in jira.issues[key]["fields"]["labels"]}) == BATCH["create_task"] + 1
    assert len(slack.posts()) == BATCH["escalate_issue"]
    events = calendar.components("VEVENT")
    todos = calendar.components("VTODO")
    assert len(events) == len({str(event["UID"]) for event in events}) == BATCH["schedule_meeting"]
    assert len(todos) == len({str(todo["UID"]) for todo in todos}) == BATCH["set_reminder"]
    assert len(mailbox.flags("INBOX")) == 0
    assert len(mailbox.flags("Archive")) == ARCHIVED
