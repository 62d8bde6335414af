"""Stored history for the measurements that depend on it: finished actions, each with its email.

Written with bulk_create, not through propose_action: these rows stand for
work done in the past (what a busy installation has stored), and creating
100,000 of them one by one would measure the filler, not the system.
"""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from actions.models import Action, ActionSource, ActionStatus, ActionType, Email, EmailStatus

BATCH = 2_000
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
