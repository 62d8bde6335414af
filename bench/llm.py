"""Figure 3: a batch of LLM-bound analyses, one at a time against the default concurrency.

The openai backend talks to the loopback OpenAI-compatible server of the
tests, which answers every request after `llm_delay` seconds (one proposed
task per email). Each pass gets mail of its own, freshly ingested, so
nothing is skipped as already analysed; each is timed over the whole of
`process_runs` (analyses, then proposals, routing and notification written
in this thread). The analysis phase ends when the first run is written
(`on_done` fires only after every analysis has come back), which splits the
time into waiting on the model and writing the results.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

from django.conf import settings
from django.test import override_settings

from actions.demo_mail import generate_messages
from actions.intake.store import ingest_message
from actions.models import Action, EmailSource
from actions.pipeline import process_runs
from bench.context import Bench
from bench.figures import Figure
from integrations.llm.openai import OpenAIBackend
from tests.openai_server import API_KEY, LoopbackOpenAI, answer, completion, serving

TASK = {
    "type": "create_task",
    "params": {"title": "Answer the customer"},
    "confidence": 0.9,
    "rationale": "The customer asks a question.",
}


@contextlib.contextmanager
def loopback_model(delay: float) -> Iterator[LoopbackOpenAI]:
    """The tests' loopback Chat Completions server on a thread, answering every request after `delay` seconds."""
    state = LoopbackOpenAI()
    state.respond_with(completion(answer(category="support", actions=[TASK]), delay=delay))
    with (
        serving(state),
        override_settings(
            ANALYSIS_BACKEND="openai",
            OPENAI_BASE_URL=state.base_url,
            OPENAI_API_KEY=API_KEY,
            OPENAI_MAX_RETRIES=0,
            OPENAI_TIMEOUT_SECONDS=30,
        ),
    ):
        yield state


class ClockedBackend(OpenAIBackend):
    """The openai backend, noting when each answer came back (the threads append; list.append is atomic)."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: list[float] = []

    def analyze(self, facts):
        try:
            return super().analyze(facts)
        finally:
            self.answered.append(time.perf_counter())


def timed_batch(model: LoopbackOpenAI, name: str, count: int, concurrency: int) -> dict[str, float]:
    """Ingest `count` new messages, then time process_runs on them at `concurrency`; say where the time went."""
    mailbox = f"llm-{name}@bench.example"
    raws = generate_messages(count, seed=30 + concurrency, mailbox=mailbox)
    runs = [ingest_message(raw, mailbox=mailbox, source=EmailSource.IMPORT, process=False).run for raw in raws]
    asked = len(model.requests)
    model.max_in_flight = 0
    backend = ClockedBackend()
    started = time.perf_counter()
    outcome = process_runs(runs, concurrency=concurrency, backend=backend)
    seconds = time.perf_counter() - started
    if outcome["succeeded"] != count or len(model.requests) - asked != count:
        raise RuntimeError(f"{name}: {outcome} after {len(model.requests) - asked} requests, for {count} messages")
    # Runs are written as their answers arrive, so writing overlaps the model's time; what is left after
    # the last answer is the writing the wait could not hide.
    last_answer = max(backend.answered) - started
    return {
        "seconds": round(seconds, 3),
        "last_answer_seconds": round(last_answer, 3),
        "writing_after_last_answer_seconds": round(seconds - last_answer, 3),
        "most_requests_at_once": model.max_in_flight,
        "actions": Action.objects.filter(email__mailbox=mailbox).count(),
    }


def measure(bench: Bench) -> list[Figure]:
    count, delay = bench.sizes.llm_messages, bench.sizes.llm_delay
    concurrency = settings.ANALYSIS_CONCURRENCY
    with loopback_model(delay) as model:
        bench.say(f"llm: {count} messages one at a time, {delay:g} s per answer")
        serial = timed_batch(model, "serial", count, 1)
        bench.say(f"llm: {count} messages at concurrency {concurrency}")
        batch = timed_batch(model, "batch", count, concurrency)
    return [
        Figure(
            key="llm_batch",
            label=f"LLM batch of {count} at {delay * 1000:.0f} ms, default concurrency",
            value=batch["seconds"],
            unit="s",
            baseline=serial["seconds"],
            baseline_label="one at a time",
            ratio=round(serial["seconds"] / batch["seconds"], 2),
            target=10,
            detail={
                "messages": count,
                "model_delay_seconds": delay,
                "concurrency": concurrency,
                # The floor: rounds of `concurrency` requests, each `delay` long.
                "least_possible_analysis_seconds": round(math.ceil(count / concurrency) * delay, 3),
                "serial": serial,
                "batch": batch,
            },
        )
    ]
