"""Figure 4: from an approver's decision to the action succeeded, with real workers running.

Each action is a forward to an address outside the company, proposed by the
analysis with high confidence: the shipped policy "Forwarding outside the
company" holds it for a lead, so route_action asks for approval and mails
the leads their links. Once those mails are out (an idle queue), a lead
approves one approval at a time through decide(), as the admin does; the
time runs from decide() returning (the decision committed, the action
queued) to the action's succeeded stamp, which comes after its message was
accepted by the SMTP server. The send delay (SEND_DELAY_SECONDS, 60 s by
default: the window for undoing a send) is 0 here, as in figure 1: it is a
wait, not work.
"""

from __future__ import annotations

import statistics

from django.db import transaction
from django.utils import timezone

from actions.models import Action, ActionSource, ActionStatus
from actions.proposals import propose_action
from approvals.decisions import decide
from approvals.models import Approval, ApprovalRecipient, ApprovalStatus
from approvals.routing import APPROVAL, route_action
from bench.context import Bench
from bench.data import cancel_unfinished, ensure_team, new_emails
from bench.figures import Figure, median, percentile
from bench.throughput import check_mail, wait_succeeded
from integrations import outbox
from integrations.models import OutboxMessage, OutboxStatus

S = ActionStatus
OUTSIDE = {"to": ["counsel@lawfirm.example"], "note": "Could you look at this before we answer?"}


def pending_approvals(count: int) -> list[Approval]:
    """`count` forwards held for approval by the shipped policy, through the pipeline's path."""
    approvals = []
    for email in new_emails(count):
        with transaction.atomic():
            action = propose_action(
                "forward_email", email=email, params=OUTSIDE, source=ActionSource.AI, confidence=0.97
            )
            route = route_action(action)
        if route.kind != APPROVAL:
            raise RuntimeError(f"a forward outside the company was routed {route.kind}: {route.reason}")
        approvals.append(Approval.objects.get(action=action, status=ApprovalStatus.PENDING))
    return approvals


def request_message_ids(approvals: list[Approval]) -> list[str]:
    """The Message-IDs of the links mailed to the approvers of `approvals`."""
    asked = ApprovalRecipient.objects.filter(approval__in=approvals)
    return [
        outbox.message_id_for(action_id, f"approval-{approval_id}-{user_id}")
        for action_id, approval_id, user_id in asked.values_list("approval__action_id", "approval_id", "user_id")
    ]


def approver_of(approval: Approval):
    """The first lead asked to decide it (the one mailed first)."""
    return ApprovalRecipient.objects.select_related("user").filter(approval=approval).order_by("pk").first().user


def measure(bench: Bench) -> list[Figure]:
    """Figure 4: median and 95th percentile of decision-to-succeeded, in milliseconds."""
    count = bench.sizes.approvals
    ensure_team()
    with bench.queueing_like_workers():
        cancel_unfinished()
        bench.say(f"holding {count} forwards for approval")
        approvals = pending_approvals(count)
        action_ids = [approval.action_id for approval in approvals]
        latencies = []
        with bench.worker() as worker:
            requests = request_message_ids(approvals)
            sent = OutboxMessage.objects.filter(message_id__in=requests, status=OutboxStatus.SENT)
            bench.wait(lambda: sent.count() == len(requests), timeout=120 + count, what="the approval requests' mail")
            bench.say(f"deciding {count} approvals one at a time")
            for approval in approvals:
                decide(approval, approver_of(approval), "approve", comment="Fine, go ahead.", via="admin")
                decided = timezone.now()
                wait_succeeded(bench, [approval.action_id], worker, timeout=60)
                finished = Action.objects.values_list("status_changed_at", flat=True).get(pk=approval.action_id)
                latencies.append((finished - decided).total_seconds() * 1000)
        mail = check_mail(bench, action_ids)
    detail = {
        "decisions": count,
        "workers": bench.sizes.workers,
        "timed": "decide() returned to the action's succeeded stamp; one decision at a time, idle queue",
        "min_ms": round(min(latencies), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "max_ms": round(max(latencies), 1),
        **mail,
    }
    bench.say(f"decision to succeeded: median {median(latencies):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms")
    return [
        Figure(
            key="approval_to_success_median",
            label="Approval decision to action succeeded, median",
            value=round(median(latencies), 1),
            unit="ms",
            detail=detail,
        ),
        Figure(
            key="approval_to_success_p95",
            label="Approval decision to action succeeded, 95th percentile",
            value=round(percentile(latencies, 0.95), 1),
            unit="ms",
            detail=detail,
        ),
    ]
