"""Demo data: a team, approval policies and a morning's worth of mail with proposed actions.

Everything here is loaded through the same service functions as real data
(import_directory, propose_action, route_action), so the audit trail and the
admin look as they will in use. The hand-written emails skip only the
analysis: their actions are written out below, then the real policies route
them, and workers execute what is queued once they start. Nothing is marked
as executed here. Loading twice changes nothing the second time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from actions.models import (
    Action,
    ActionSource,
    ActionStatus,
    ActionType,
    Email,
    EmailStatus,
    Priority,
    ProcessingRun,
    RunStatus,
    RunStep,
    StepName,
)
from actions.pipeline.runs import review_reason, route_line
from actions.proposals import propose_action
from actions.runlog import log_line
from actions.transitions import transition_action
from approvals.models import ApprovalPolicy
from approvals.routing import SUGGEST, Route, route_action
from teams.directory import import_directory

MAILBOX = "support@acme.example"
TEAM_FILE = Path(__file__).resolve().parent.parent / "teams" / "fixtures" / "demo_team.json"


def _next_weekday(weekday: int) -> date:
    """The next given weekday (0 Monday) after today, for dates that stay in the future."""
    today = timezone.localdate()
    return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


@dataclass
class DemoAction:
    type: ActionType
    params: dict
    confidence: float
    rationale: str
    priority: Priority = Priority.NORMAL
    # Dismissed by a person before the policy saw it; otherwise the policy routes it.
    dismissed: bool = False


@dataclass
class DemoEmail:
    key: str
    sender: tuple[str, str]
    subject: str
    body: str
    category: str
    minutes_ago: int
    actions: list[DemoAction] = field(default_factory=list)
    in_reply_to: str = ""


EMAILS = [
    DemoEmail(
        "outage-eu",
        ("Grace Hopper", "grace@bigcustomer.example"),
        "URGENT: checkout returns 502 for all EU customers",
        "Since 07:40 CET every checkout in the EU region fails with a 502.\n"
        "We are losing orders. Please call me back on +44 20 7946 0000.",
        "outage",
        12,
        [
            DemoAction(
                ActionType.ESCALATE_ISSUE,
                {"reason": "EU checkout down, revenue impact", "priority": "urgent"},
                0.93,
                "Customer reports a full outage with revenue impact.",
                Priority.URGENT,
            ),
            DemoAction(
                ActionType.CREATE_TASK,
                {"title": "EU checkout 502s", "skills": ["incident-response", "infrastructure"]},
                0.9,
                "An outage needs an owner.",
                Priority.URGENT,
            ),
        ],
    ),
    DemoEmail(
        "invoice-question",
        ("Ben Okafor", "ben@smallshop.example"),
        "Question about invoice INV-2291",
        "Hi, we were charged twice for October (INV-2291 and INV-2297). Could you refund one of them?",
        "billing",
        45,
        [
            DemoAction(
                ActionType.SEND_REPLY,
                {
                    "body": "Hi Ben, thanks for spotting this. We are checking both invoices "
                    "and will refund the duplicate."
                },
                0.62,
                "Billing question; the draft promises a refund, so a person should look.",
            ),
            DemoAction(
                ActionType.DELEGATE_TASK,
                {"skills": ["billing"], "note": "Duplicate charge, check INV-2291 vs INV-2297"},
                0.81,
                "Billing work goes to a billing specialist.",
            ),
        ],
    ),
    DemoEmail(
        "meeting-request",
        ("Chen Wei", "chen.wei@partner.example"),
        "Quarterly review: can we meet Thursday at 15:00?",
        "Hello team, could we hold the quarterly review this Thursday at 15:00 CET for an hour?",
        "meeting",
        90,
        [
            DemoAction(
                ActionType.SCHEDULE_MEETING,
                {
                    "title": "Quarterly review with Partner Co",
                    "start": f"{_next_weekday(3):%Y-%m-%d}T15:00:00",
                    "timezone": "Europe/Berlin",
                    "attendees": ["chen.wei@partner.example", "priya.natarajan@acme.example"],
                    "duration_minutes": 60,
                },
                0.88,
                "A concrete meeting request with a proposed time.",
            ),
            DemoAction(
                ActionType.SEND_REPLY,
                {"body": "Hello Chen, Thursday at 15:00 works for us. Talk to you then."},
                0.45,
                "Low confidence: nobody has checked that Thursday suits the team; a suggestion for a person.",
            ),
        ],
    ),
    DemoEmail(
        "purchase-approval",
        ("Marco Rossi", "marco.rossi@acme.example"),
        "Approval needed: new monitoring licence (EUR 4,800)",
        "Please approve the purchase of the monitoring licence, EUR 4,800 per year. PO-7781.",
        "approval",
        130,
        [
            DemoAction(
                ActionType.APPROVE_REQUEST,
                {"decision": "approve", "reference": "PO-7781", "amount": 4800, "currency": "EUR"},
                0.7,
                "An approval request; answering it always needs a manager.",
                Priority.HIGH,
            )
        ],
    ),
    DemoEmail(
        "forward-legal",
        ("Ana Lima", "ana@bigcustomer.example"),
        "Contract redlines attached",
        "Please find our redlines to the master agreement attached. Could your legal team review?",
        "legal",
        200,
        [
            DemoAction(
                ActionType.FORWARD_EMAIL,
                {"to": ["counsel@lawfirm.example"], "note": "Redlines from Big Customer for review."},
                0.77,
                "Legal review is done by outside counsel.",
            )
        ],
    ),
    DemoEmail(
        "newsletter",
        ("Weekly Digest", "digest@news.example"),
        "This week in infrastructure: 10 links",
        "Our weekly roundup of articles. Unsubscribe at any time.",
        "newsletter",
        300,
        [
            DemoAction(ActionType.ARCHIVE_EMAIL, {}, 0.97, "A newsletter needs no answer."),
        ],
    ),
    DemoEmail(
        "task-request",
        ("Liam O'Brien", "liam.obrien@acme.example"),
        "Can someone update the refund policy page by Friday?",
        "The refund policy page still lists 14 days; it is 30 days since November. Please fix by Friday.",
        "task",
        400,
        [
            DemoAction(
                ActionType.CREATE_TASK,
                {
                    "title": "Update refund policy page to 30 days",
                    "due_at": f"{_next_weekday(4):%Y-%m-%d}T17:00:00+00:00",
                    "skills": ["customer-support"],
                },
                0.86,
                "A clear request with a deadline.",
            ),
            DemoAction(
                ActionType.SET_REMINDER,
                {"recipient": "liam.obrien@acme.example", "text": "Check the refund page was updated", "in_hours": 72},
                0.55,
                "Low confidence: the sender may not want a reminder.",
                dismissed=True,
            ),
        ],
    ),
    DemoEmail(
        "follow-up",
        ("Ben Okafor", "ben@smallshop.example"),
        "Re: Question about invoice INV-2291",
        "Any news on the refund? It has been a week.",
        "billing",
        5,
        [
            DemoAction(
                ActionType.FOLLOW_UP,
                {"due_in_hours": 24, "draft": "Hi Ben, the refund for INV-2297 has been issued."},
                0.72,
                "The customer is waiting; follow up if nobody answers.",
                Priority.HIGH,
            )
        ],
        in_reply_to="invoice-question",
    ),
]


def _message_id(key: str) -> str:
    return f"<demo-{key}@mail.acme.example>"


def _load_email(demo: DemoEmail, now) -> tuple[Email, bool]:
    name, address = demo.sender
    parent = Email.objects.filter(mailbox=MAILBOX, message_id=_message_id(demo.in_reply_to)).first()
    email, created = Email.objects.get_or_create(
        mailbox=MAILBOX,
        message_id=_message_id(demo.key),
        defaults={
            "from_name": name,
            "from_address": address,
            "to": [MAILBOX],
            "subject": demo.subject,
            "text_body": demo.body,
            "category": demo.category,
            "received_at": now - timedelta(minutes=demo.minutes_ago),
            "in_reply_to": parent.message_id if parent else "",
            "references": [parent.message_id] if parent else [],
            "parent": parent,
            "headers": [["From", f"{name} <{address}>"], ["To", MAILBOX], ["Subject", demo.subject]],
        },
    )
    return email, created


_DEMO_STEPS = [
    (StepName.INTAKE, "Loaded by load_demo (demo data, not fetched from a mailbox)."),
    (StepName.ANALYSE, "Actions proposed by the demo script; no analysis backend ran."),
]


def _start_run(email: Email) -> ProcessingRun:
    now = timezone.now()
    run = ProcessingRun.objects.create(email=email, status=RunStatus.RUNNING, started_at=now)
    for name, line in _DEMO_STEPS:
        RunStep.objects.create(
            run=run, name=name, status=RunStatus.SUCCEEDED, started_at=now, finished_at=now, log=[log_line(line, now)]
        )
    return run


def _load_action(demo: DemoAction, email: Email, run: ProcessingRun, index: int) -> tuple[Action, Route | None]:
    """Propose the action, then route it by the real policies; no route when a person dismissed it first."""
    action = propose_action(
        demo.type,
        email=email,
        params=demo.params,
        priority=demo.priority,
        confidence=demo.confidence,
        rationale=demo.rationale,
        source=ActionSource.RULE,
        context={"category": email.category, "seeded_by": "load_demo"},
        run=run,
        idempotency_key=f"demo:{email.message_id}:{index}",
    )
    if demo.dismissed:
        transition_action(action, ActionStatus.CANCELLED, actor="demo", reason="demo: dismissed by a person")
        return action, None
    # The real policy decides: run at once, ask an approver (who is mailed a link), or suggest.
    return action, route_action(action, actor="policy")


def _finish_run(run: ProcessingRun, email: Email, routed: list[tuple[Action, Route | None]]) -> None:
    """End the run as the pipeline ends one: routing logged, the email processed or, with suggestions, in review."""
    now = timezone.now()
    lines = [
        route_line(action, route) if route else f"{action.type} #{action.pk}: dismissed by a person."
        for action, route in routed
    ]
    RunStep.objects.create(
        run=run,
        name=StepName.ROUTE,
        status=RunStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
        log=[log_line(line, now) for line in lines],
    )
    ProcessingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=now)
    suggested = sum(1 for _action, route in routed if route and route.kind == SUGGEST)
    email.status_reason = review_reason(email, [action for action, _route in routed], suggested)
    email.status = EmailStatus.REVIEW if email.status_reason else EmailStatus.PROCESSED
    email.save(update_fields=["status", "status_reason"])


@transaction.atomic
def load_demo() -> dict[str, int]:
    """Load the demo team, policies, mail and actions; return how many emails were new."""
    with TEAM_FILE.open(encoding="utf-8") as handle:
        members = import_directory(json.load(handle))
    now = timezone.now()
    new_emails = 0
    for demo in EMAILS:
        email, created = _load_email(demo, now)
        if not created:
            continue
        new_emails += 1
        run = _start_run(email)
        routed = [_load_action(demo_action, email, run, index) for index, demo_action in enumerate(demo.actions)]
        _finish_run(run, email, routed)
    return {"members": len(members), "policies": ApprovalPolicy.objects.count(), "new_emails": new_emails}


def load_demo_mail(count: int, *, seed: int | None = None) -> dict[str, int]:
    """Generate `count` demo emails and take them through the real intake and pipeline; return counts."""
    from actions.demo_mail import generate
    from actions.intake.store import ingest_message
    from actions.models import EmailSource
    from actions.pipeline import process_runs

    runs = []
    for item in generate(count, seed=seed):
        result = ingest_message(item.raw, mailbox=MAILBOX, source=EmailSource.DEMO, process=False)
        if result.created and not result.quarantined:
            runs.append(result.run)
    outcome = process_runs(runs)
    review = Email.objects.filter(pk__in=[run.email_id for run in runs], status=EmailStatus.REVIEW).count()
    return {"stored": len(runs), "succeeded": outcome["succeeded"], "review": review}
