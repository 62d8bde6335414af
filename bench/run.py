"""One configuration's run, in a process of its own: `python -m bench.run --config sqlite --out FILE`.

`python -m bench` starts this once per configuration with the environment
that selects the database and broker; it is not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import tempfile
import time
import traceback
from pathlib import Path

# The measurements, in the order they run: the ones that need an empty
# store first, then the ones that grow it (7 stores up to 100,000 actions,
# which 6 then lists).
FIGURES: list[tuple[int, str]] = [
    (2, "bench.intake:measure"),
    (3, "bench.llm:measure"),
    (1, "bench.throughput:measure"),
    (4, "bench.approval:measure"),
    (5, "bench.urgent:measure"),
    (7, "bench.throughput:measure_growth"),
    (6, "bench.api:measure"),
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--figures", default="", help="Comma-separated figure numbers (default: all).")
    args = parser.parse_args()
    wanted = {int(n) for n in args.figures.split(",") if n.strip()}

    import django

    django.setup()
    from django.core.management import call_command

    from bench.context import Bench
    from bench.sizes import FULL, QUICK

    call_command("migrate", verbosity=0, interactive=False)
    bench = Bench(
        config=args.config,
        sizes=QUICK if args.quick else FULL,
        workdir=Path(tempfile.mkdtemp(prefix="bench-", dir=os.environ.get("MAILROOM_DATA_DIR"))),
        database_url=os.environ["DATABASE_URL"],
    )
    results: dict = {"config": args.config, "quick": args.quick, "figures": [], "errors": {}, "seconds": {}}
    try:
        for number, target in FIGURES:
            if wanted and number not in wanted:
                continue
            module_name, function_name = target.split(":")
            started = time.monotonic()
            bench.say(f"figure {number}: {module_name}.{function_name}")
            try:
                function = getattr(importlib.import_module(module_name), function_name)
                figures = function(bench)
                results["figures"] += [{"figure": number, **figure.as_dict()} for figure in figures]
            except Exception as exc:
                bench.say(f"figure {number} failed: {exc}")
                results["errors"][str(number)] = "".join(traceback.format_exception(exc))
            finally:
                bench.purge_queues()
            results["seconds"][str(number)] = round(time.monotonic() - started, 1)
    finally:
        bench.close()
    args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
