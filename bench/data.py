"""The data measurements work on: stored history, the team, and new actions queued through the real path.

History is written with bulk_create, not through propose_action: those rows
stand for work done in the past (what a busy installation has stored), and
creating 100,000 of them one by one would measure the filler, not the
system. The actions a figure times are proposed and queued the way the
pipeline does it, on emails written in bulk (the emails are input, not work).
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from actions.executor import cancel_action, queue_action
from actions.models import Action, ActionSource, ActionStatus, ActionType, Email, EmailStatus, Priority
from actions.proposals import propose_action
from teams.directory import import_directory
from teams.models import TeamMember
from tests.team_data import TEAM

BATCH = 2_000
# Work that runs inside Mailroom with the default backends (local tasks,
# reminders and mailbox), and work that sends mail (to the run's SMTP server).
LOCAL_WORK: list[tuple[str, dict]] = [
    ("create_task", {"title": "Call the customer back about the delivery"}),
    ("create_task", {"title": "Check the invoice", "skills": ["billing"]}),
    ("create_task", {"title": "Look into the outage report", "skills": {"infrastructure": 3}}),
    ("set_reminder", {"text": "Check the refund went out", "in_hours": 24}),
    ("mark_complete", {}),
    ("archive_email", {}),
]
MAIL_WORK: list[tuple[str, dict]] = [
    ("send_reply", {"body": "Thanks for writing; your order left our warehouse today."}),
    ("send_reply", {"body": "We are on it and will write again tomorrow."}),
    ("send_reply", {"body": "Your refund was approved."}),
    ("forward_email", {"to": ["billing@acme.example"], "note": "For you, please."}),
]
# Six in ten actions work locally, four in ten send a message.
MIXED_WORK = LOCAL_WORK + MAIL_WORK
MAILING = frozenset(action_type for action_type, _ in MAIL_WORK)
# A stored mix like a real history: mostly finished, some waiting or failed.
HISTORY_STATUSES = [ActionStatus.SUCCEEDED] * 14 + [
    ActionStatus.REJECTED,
    ActionStatus.CANCELLED,
    ActionStatus.DEAD,
    ActionStatus.UNDONE,
    ActionStatus.EXPIRED,
    ActionStatus.PENDING_APPROVAL,
]


def ensure_stored_actions(total: int, *, say=print) -> int:
    """Top the actions table up to at least `total` rows; return how many were added."""
    have = Action.objects.count()
    missing = max(total - have, 0)
    rng = random.Random(have)  # the same history for the same sizes
    types = itertools.cycle(ActionType.values)
    now = timezone.now()
    added = 0
    while added < missing:
        size = min(BATCH, missing - added)
        tag = uuid.uuid4().hex[:12]
        with transaction.atomic():
            emails = Email.objects.bulk_create(
                Email(
                    mailbox="support@acme.example",
                    message_id=f"<history-{tag}-{n}@customer.example>",
                    from_address=f"customer{n % 500}@customer{n % 37}.example",
                    subject=f"Order {n}: question about delivery",
                    text_body="Where is my order? It was due last week.",
                    status=EmailStatus.PROCESSED,
                    received_at=now - timedelta(minutes=added + n),
                )
                for n in range(size)
            )
            Action.objects.bulk_create(
                Action(
                    type=next(types),
                    status=rng.choice(HISTORY_STATUSES),
                    params={"note": "history"},
                    confidence=round(rng.uniform(0.5, 1.0), 2),
                    rationale="Stored history for the benchmark.",
                    source=ActionSource.RULE,
                    idempotency_key=f"history:{tag}:{n}",
                    email=email,
                    attempts=1,
                )
                for n, email in enumerate(emails)
            )
        added += size
        if added % 20_000 < BATCH or added == missing:
            say(f"stored actions: {have + added:,}")
    return added


def ensure_team() -> list[TeamMember]:
    """The twelve of tests/team_data.py, so assignment and approvals choose among real members."""
    if TeamMember.objects.filter(user__email__iexact=TEAM[0]["email"]).exists():
        return list(TeamMember.objects.all())
    return import_directory({"members": TEAM})


def new_emails(count: int) -> list[Email]:
    """`count` received customer emails, from 500 senders at 37 domains."""
    tag = uuid.uuid4().hex[:12]
    now = timezone.now()
    return Email.objects.bulk_create(
        Email(
            mailbox="support@acme.example",
            message_id=f"<bench-{tag}-{n}@customer.example>",
            from_address=f"customer{n % 500}@customer{n % 37}.example",
            to=["support@acme.example"],
            subject=f"Order {n}: where is it?",
            text_body="Hello, my order was due last week. Could you tell me where it is?",
            received_at=now - timedelta(seconds=count - n),
        )
        for n in range(count)
    )


def queue_actions(count: int, work: list[tuple[str, dict]], *, priority: int = Priority.NORMAL) -> list[int]:
    """Propose and queue `count` actions (cycling through `work`), one email each, in one transaction; their ids.

    They are enqueued when the transaction commits, as the pipeline's are.
    """
    emails = new_emails(count)
    plan = itertools.cycle(work)
    ids = []
    with transaction.atomic():
        for email in emails:
            action_type, params = next(plan)
            action = propose_action(
                action_type, email=email, params=params, source=ActionSource.RULE, priority=priority
            )
            ids.append(queue_action(action, actor="bench").pk)
    return ids


def cancel_unfinished() -> int:
    """Cancel every queued or failed action, so no left-over work competes with the next measurement; how many."""
    unfinished = list(Action.objects.filter(status__in=[ActionStatus.QUEUED, ActionStatus.FAILED]).only("pk", "status"))
    with transaction.atomic():
        for action in unfinished:
            cancel_action(action, actor="bench", reason="benchmark clean-up")
    return len(unfinished)
