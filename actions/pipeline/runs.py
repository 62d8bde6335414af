"""Processing runs: analyse a stored email, propose its actions, route them, hand them over, notify.

Each step writes its row (status, timings, log lines) as it goes, so a person
sees where a message is and why. Between steps the run's status is read
again: a run paused or cancelled by a person stops at the next step boundary.

In a batch, the analyses run in threads, at most ANALYSIS_CONCURRENCY at
once (LLM calls mostly wait on the network), while this thread alone reads
and writes the database.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from actions.models import (
    Action,
    ActionSource,
    ActionStatus,
    Email,
    EmailStatus,
    ProcessingRun,
    RunStatus,
    RunStep,
    StepName,
)
from actions.pipeline.notify import notify_urgent
from actions.proposals import InvalidProposal, propose_action
from actions.runlog import log_line
from approvals.routing import SUGGEST, Route, route_action
from integrations.llm import Analysis, AnalysisBackend, EmailFacts, get_backend

logger = logging.getLogger(__name__)

# Categories the analysis uses when it could not tell: the message goes to a person.
UNDECIDED = {"", "other"}


class RunStopped(Exception):
    """A person paused or cancelled the run; it stops at this step boundary."""


@dataclass
class Outcome:
    """What one run's analysis produced, before it is written: an Analysis or the error."""

    analysis: Analysis | None = None
    error: Exception | None = None
    seconds: float = 0.0


def facts_for(email: Email) -> EmailFacts:
    """The email as a backend may read it (attachments must be prefetched for batches)."""
    return EmailFacts(
        id=email.pk,
        mailbox=email.mailbox,
        from_address=email.from_address,
        from_name=email.from_name,
        to=tuple(map(str, email.to)),
        cc=tuple(map(str, email.cc)),
        subject=email.subject,
        body=email.plain_text[: settings.ANALYSIS_MAX_BODY_CHARS],
        headers=tuple((str(name), str(value)) for name, value in email.headers),
        attachments=tuple(attachment.filename for attachment in email.attachments.all()),
        automated=email.automated,
        received_at=email.received_at.isoformat(),
    )


def process_run(run_id: int) -> str:
    """The worker's task for one run; returns what happened."""
    summary = process_runs(ProcessingRun.objects.filter(pk=run_id), concurrency=1)
    return ", ".join(f"{count} {what}" for what, count in summary.items() if count) or "nothing to do"


def process_runs(
    runs: Iterable[ProcessingRun],
    *,
    concurrency: int | None = None,
    backend: AnalysisBackend | None = None,
    on_done: Callable[[ProcessingRun], None] | None = None,
) -> dict[str, int]:
    """Take the given pending runs through the pipeline; return counts by outcome.

    Runs another process claimed, or that are not pending, are left alone.
    """
    claimed = [run for run in runs if _claim(run)]
    counts = {"succeeded": 0, "failed": 0, "stopped": 0}
    if not claimed:
        return counts
    runs_by_id = {
        run.pk: run
        for run in ProcessingRun.objects.filter(pk__in=[r.pk for r in claimed])
        .select_related("email")
        .prefetch_related("email__attachments", "steps")
    }
    ordered = [runs_by_id[run.pk] for run in claimed]
    backend = backend or get_backend()
    pending = [run for run in ordered if not _step_done(run, StepName.ANALYSE)]
    # Runs analysed before (a resumed run) go on at once; the others as each analysis returns, so
    # writing one run's results overlaps waiting on the model for the next.
    analysed_before = ((run, None) for run in ordered if _step_done(run, StepName.ANALYSE))
    analyses = _analyse_all(backend, pending, concurrency or settings.ANALYSIS_CONCURRENCY)
    for run, outcome in itertools.chain(analysed_before, analyses):
        try:
            if outcome is not None:
                _record_analysis(run, outcome)
            for name, step in ((StepName.ROUTE, _route), (StepName.EXECUTE, _hand_over), (StepName.NOTIFY, _notify)):
                _run_step(run, name, step)
            _finish(run, RunStatus.SUCCEEDED)
            counts["succeeded"] += 1
        except RunStopped:
            counts["stopped"] += 1
        except AnalysisFailed:
            counts["failed"] += 1
        except Exception as exc:
            logger.exception("Run %s failed", run.pk)
            _fail(run, f"{type(exc).__name__}: {exc}")
            counts["failed"] += 1
        if on_done:
            on_done(run)
    return counts


class AnalysisFailed(Exception):
    """The analysis could not be done; the run is failed and the email waits for a person."""


def _claim(run: ProcessingRun) -> bool:
    # Compare-and-set: of two workers given the same run, one wins.
    return bool(
        ProcessingRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=run.started_at or timezone.now()
        )
    )


def _steps(run: ProcessingRun) -> dict[str, RunStep]:
    """The run's steps by name, read once: only the process that claimed the run writes them."""
    if not hasattr(run, "_step_rows"):
        run._step_rows = {step.name: step for step in run.steps.all()}
    return run._step_rows


def _step_done(run: ProcessingRun, name: str) -> bool:
    step = _steps(run).get(name)
    return step is not None and step.status == RunStatus.SUCCEEDED


def _analyse_all(
    backend: AnalysisBackend, runs: list[ProcessingRun], concurrency: int
) -> Iterator[tuple[ProcessingRun, Outcome]]:
    """Analyse each run's email, `concurrency` at a time, yielding each as it is done.

    No database access happens in the threads: the caller writes each outcome
    while the others are still being analysed.
    """
    now = timezone.now()
    for run in runs:
        _start_step(run, StepName.ANALYSE, f"Analysing with the {backend.name} backend.", at=now)
    facts = {run.pk: facts_for(run.email) for run in runs}

    def analyse(run_id: int) -> Outcome:
        started = time.monotonic()
        try:
            return Outcome(analysis=backend.analyze(facts[run_id]), seconds=time.monotonic() - started)
        except Exception as exc:
            return Outcome(error=exc, seconds=time.monotonic() - started)

    if concurrency <= 1 or len(runs) <= 1:
        for run in runs:
            yield run, analyse(run.pk)
        return
    with ThreadPoolExecutor(max_workers=min(concurrency, len(runs)), thread_name_prefix="analysis") as pool:
        futures = {pool.submit(analyse, run.pk): run for run in runs}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _record_analysis(run: ProcessingRun, outcome: Outcome) -> None:
    """Write the analysis onto the email and run, and propose its actions (each checked by its schema)."""
    email = run.email
    if outcome.error is not None:
        reason = f"Analysis failed after {outcome.seconds:.2f} s: {outcome.error}"
        with transaction.atomic():
            _end_step(run, StepName.ANALYSE, RunStatus.FAILED, reason)
            _set_email(email, EmailStatus.REVIEW, reason)
            _finish(run, RunStatus.FAILED, reason)
        raise AnalysisFailed(reason)
    analysis = outcome.analysis
    lines = [
        f"{analysis.backend or 'analysis'}{f' ({analysis.model})' if analysis.model else ''} took "
        f"{outcome.seconds:.2f} s: category {analysis.category}, priority {analysis.priority}, "
        f"{len(analysis.actions)} proposal(s)."
    ]
    if analysis.tokens:
        lines.append(
            f"{analysis.input_tokens} input and {analysis.output_tokens} output tokens, cost ${analysis.cost}."
        )
    lines += analysis.notes
    source = ActionSource.AI if analysis.backend == "openai" else ActionSource.RULE
    with transaction.atomic():
        email.category, email.priority = analysis.category[:64], analysis.priority
        email.summary, email.draft_reply = analysis.summary, analysis.draft_reply
        email.status = EmailStatus.ANALYSED
        email.save(update_fields=["category", "priority", "summary", "draft_reply", "status"])
        refused = 0
        ProcessingRun.objects.filter(pk=run.pk).update(
            backend=analysis.backend[:32],
            model=analysis.model[:100],
            tokens_used=analysis.tokens,
            cost=analysis.cost,
        )
        for index, proposal in enumerate(analysis.actions):
            try:
                action = propose_action(
                    proposal.type,
                    email=email,
                    params=proposal.params,
                    source=source,
                    priority=max(proposal.priority or 0, analysis.priority),
                    confidence=proposal.confidence,
                    rationale=proposal.rationale[:2000],
                    context={"category": analysis.category, "analysis": analysis.backend},
                    run=run,
                    idempotency_key=f"run:{run.pk}:{index}",
                )
                lines.append(f"Proposed {action.type} #{action.pk} (confidence {proposal.confidence:.2f}).")
            except InvalidProposal as exc:
                refused += 1
                lines.append(f"Refused a proposed {proposal.type}: {exc}")
        if refused:
            # Routing keeps this: whatever the policy makes of the rest, a person looks at the email.
            _set_email(email, EmailStatus.REVIEW, f"{refused} proposed action(s) were invalid and refused.")
        _end_step(run, StepName.ANALYSE, RunStatus.SUCCEEDED, *lines)


def _route(run: ProcessingRun) -> list[str]:
    """Let the policy decide for each proposal; put the email in the review queue when nobody could."""
    email = Email.objects.get(pk=run.email_id)
    lines, suggested = [], 0
    actions = list(run.actions.filter(status=ActionStatus.PROPOSED).order_by("pk"))
    for action in actions:
        route = route_action(action, actor="policy")
        suggested += route.kind == SUGGEST
        lines.append(route_line(action, route))
    # In review already: the analysis proposed something invalid.
    review = email.status_reason if email.status == EmailStatus.REVIEW else review_reason(email, actions, suggested)
    if review:
        lines.append(f"Needs review: {review}")
        _set_email(email, EmailStatus.REVIEW, review)
    else:
        _set_email(email, EmailStatus.PROCESSED, email.status_reason)
    return lines or ["No actions to route."]


def route_line(action: Action, route: Route) -> str:
    """The routing step's log line for one action."""
    return f"{action.type} #{action.pk}: {route.kind}, {route.reason}."


def review_reason(email: Email, actions: list[Action], suggested: int) -> str:
    """Why the email needs a person after routing (also how the demo ends its runs), or ""."""
    if suggested:
        return f"{suggested} proposal(s) are only suggestions: a person decides."
    if not actions and email.category in UNDECIDED and not email.automated:
        return "The analysis proposed nothing and could not tell what this message is."
    return ""


def _hand_over(run: ProcessingRun) -> list[str]:
    """Say what went to the workers; they record their own outcomes on the actions."""
    by_status: dict[str, list[str]] = {}
    for action in run.actions.order_by("pk"):
        by_status.setdefault(action.get_status_display(), []).append(f"{action.type} #{action.pk}")
    return [f"{status}: {', '.join(names)}." for status, names in by_status.items()] or ["Nothing to execute."]


def _notify(run: ProcessingRun) -> list[str]:
    return notify_urgent(Email.objects.get(pk=run.email_id), run)


# --- Bookkeeping ---------------------------------------------------------------------


def _check(run: ProcessingRun) -> None:
    status = ProcessingRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
    if status != RunStatus.RUNNING:
        raise RunStopped(status)


def _run_step(run: ProcessingRun, name: str, step: Callable[[ProcessingRun], list[str]]) -> None:
    """Do one step of the run once, logging what it says; stop first if a person paused or cancelled the run."""
    if _step_done(run, name):
        return
    _check(run)
    _start_step(run, name)
    _end_step(run, name, RunStatus.SUCCEEDED, *step(run))


def _start_step(run: ProcessingRun, name: str, *lines: str, at=None) -> None:
    at = at or timezone.now()
    step = _steps(run).get(name)
    log = [log_line(text, at) for text in lines]
    if step is None:
        _steps(run)[name] = RunStep.objects.create(run=run, name=name, status=RunStatus.RUNNING, started_at=at, log=log)
        return
    step.status, step.started_at, step.finished_at = RunStatus.RUNNING, at, None
    step.log = [*step.log, *log]
    step.save(update_fields=["status", "started_at", "finished_at", "log"])


def _end_step(run: ProcessingRun, name: str, status: str, *lines: str) -> None:
    step = _steps(run)[name]
    step.status, step.finished_at = status, timezone.now()
    step.log = [*step.log, *(log_line(text, step.finished_at) for text in lines)]
    step.save(update_fields=["status", "finished_at", "log"])


def _set_email(email: Email, status: str, reason: str) -> None:
    email.status, email.status_reason = status, reason
    Email.objects.filter(pk=email.pk).update(status=status, status_reason=reason)


def _finish(run: ProcessingRun, status: str, reason: str = "") -> None:
    # Only a running run finishes: one paused or cancelled meanwhile keeps what the person chose.
    ProcessingRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), reason=reason
    )


def _fail(run: ProcessingRun, reason: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        RunStep.objects.filter(run=run, status=RunStatus.RUNNING).update(status=RunStatus.FAILED, finished_at=now)
        _finish(run, RunStatus.FAILED, reason)
    for step in _steps(run).values():
        if step.status == RunStatus.RUNNING:
            step.status, step.finished_at = RunStatus.FAILED, now
