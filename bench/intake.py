"""Figure 2: intake and analysis with local rules, in messages per second from raw MIME to routed actions.

Two batches, each timed from its first raw byte to its last routed action,
as `import_mail --process` does it: every message through
`ingest_message` (parse, store, quarantine what is not mail, start the run),
then the stored ones through `process_runs` with the local-rules backend
(analyse, propose, route, hand over, notify). The shared corpus is real mail
from other projects' test suites, much of it broken on purpose; the
generated batch is the demo stream (plain, HTML, attachments, replies,
bounces, auto-replies). Each batch has a mailbox of its own, so every
message is new to it.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from actions.demo_mail import generate_messages
from actions.intake.store import ingest_message
from actions.models import Action, EmailSource
from actions.pipeline import process_runs
from bench.context import Bench
from bench.figures import Figure
from integrations.llm.local import LocalRulesBackend

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"
CORPUS_MAILBOX = "corpus@bench.example"
GENERATED_MAILBOX = "support@bench.example"


def corpus_messages() -> list[bytes]:
    """Every file of the shared corpus as bytes, the manifest included (it is not mail: it gets quarantined)."""
    files = sorted(path for path in CORPUS.rglob("*") if path.is_file() and not path.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"no corpus in {CORPUS}")
    return [path.read_bytes() for path in files]


def intake_rate(key: str, label: str, raws: list[bytes], mailbox: str) -> Figure:
    """Ingest and process `raws` as one batch; the figure is messages per second over the whole of it."""
    outcomes: Counter[str] = Counter()
    runs, taken = [], set()
    started = time.perf_counter()
    for raw in raws:
        result = ingest_message(raw, mailbox=mailbox, source=EmailSource.IMPORT, process=False)
        if not result.created:
            # The corpus repeats some Message-IDs; a repeat must find a message of this batch, nothing older.
            if result.email.pk not in taken:
                raise RuntimeError(f"{mailbox} already held {result.email.message_id} before this batch")
            outcomes["repeated"] += 1
            continue
        taken.add(result.email.pk)
        if result.quarantined:
            outcomes["quarantined"] += 1
        else:
            outcomes["stored"] += 1
            runs.append(result.run)
    ingested = time.perf_counter()
    processed = process_runs(runs, backend=LocalRulesBackend())
    seconds = time.perf_counter() - started
    if processed["succeeded"] != len(runs):
        raise RuntimeError(f"of {len(runs)} runs, {processed} (every stored message should have been processed)")
    actions = Action.objects.filter(email__mailbox=mailbox)
    by_status = Counter(actions.values_list("status", flat=True))
    return Figure(
        key=key,
        label=label,
        value=round(len(raws) / seconds, 1),
        unit="msg/s",
        detail={
            "messages": len(raws),
            "stored": outcomes["stored"],
            "quarantined": outcomes["quarantined"],
            "repeated_message_ids": outcomes["repeated"],
            "actions_proposed": sum(by_status.values()),
            "actions_by_status": dict(sorted(by_status.items())),
            "seconds": round(seconds, 3),
            "intake_seconds": round(ingested - started, 3),
            "pipeline_seconds": round(seconds - (ingested - started), 3),
            "megabytes": round(sum(map(len, raws)) / 1e6, 2),
        },
    )


def measure(bench: Bench) -> list[Figure]:
    corpus = corpus_messages()
    bench.say(f"intake: {len(corpus)} corpus files")
    figures = [intake_rate("intake_corpus", "Intake + local rules, shared corpus", corpus, CORPUS_MAILBOX)]
    generated = generate_messages(bench.sizes.intake_generated, seed=2, mailbox=GENERATED_MAILBOX)
    bench.say(f"intake: {len(generated)} generated messages")
    figures.append(
        intake_rate("intake_generated", "Intake + local rules, generated mail", generated, GENERATED_MAILBOX)
    )
    return figures
