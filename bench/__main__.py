"""`python -m bench`: every figure, on SQLite with the ORM broker and on PostgreSQL with Redis, side by side.

    python -m bench                      # both configurations, the issue's sizes
    python -m bench --quick              # small sizes: checks that everything runs
    python -m bench --config sqlite      # one configuration
    python -m bench --figures 1,7        # some figures
    python -m bench --out results.json   # where the JSON goes (default bench/results/latest.json)

PostgreSQL and Redis are taken from BENCH_DATABASE_URL and BENCH_REDIS_URL
(default: postgres://postgres@127.0.0.1:5432/mailroom_bench, dropped and
made anew, and Redis database 15, flushed). Exit status: 0 when every
figure was measured, 1 when one failed or a configuration could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.configs import POSTGRES_URL, REDIS_URL, configurations
from bench.report import table

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "latest.json"


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="sqlite,postgresql", help="sqlite, postgresql or both (default).")
    parser.add_argument("--quick", action="store_true", help="Small sizes, to check that everything runs.")
    parser.add_argument("--figures", default="", help="Comma-separated figure numbers 1-7 (default: all).")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where to save the JSON.")
    args = parser.parse_args()

    configs = configurations(
        os.environ.get("BENCH_DATABASE_URL", POSTGRES_URL), os.environ.get("BENCH_REDIS_URL", REDIS_URL)
    )
    names = [name.strip() for name in args.config.split(",") if name.strip()]
    unknown = [name for name in names if name not in configs]
    if unknown:
        parser.error(f"unknown configuration {', '.join(unknown)}; choose from {', '.join(configs)}")

    runs: dict[str, dict] = {}
    for name in names:
        config = configs[name]
        problem = config.unreachable()
        if problem:
            runs[name] = {"config": name, "figures": [], "errors": {}, "skipped": problem}
            print(f"{config.label}: skipped, {problem}", file=sys.stderr)
            continue
        config.prepare()
        with tempfile.TemporaryDirectory(prefix=f"mailroom-bench-{name}-") as data_dir:
            out = Path(data_dir) / "result.json"
            command = [sys.executable, "-m", "bench.run", "--config", name, "--out", str(out)]
            command += ["--quick"] * args.quick + (["--figures", args.figures] if args.figures else [])
            started = time.monotonic()
            env = {**os.environ, **config.environment(Path(data_dir))}
            finished = subprocess.run(command, cwd=ROOT, env=env, check=False)
            if out.exists():
                runs[name] = json.loads(out.read_text())
            else:
                runs[name] = {"config": name, "figures": [], "errors": {"all": f"exit status {finished.returncode}"}}
            runs[name]["total_seconds"] = round(time.monotonic() - started, 1)
            # How busy the machine was meanwhile: figures from a loaded machine are not comparable.
            runs[name]["load_average_after"] = [round(load, 2) for load in os.getloadavg()]

    labels = {name: configs[name].label for name in names}
    print(table(runs, labels))
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "quick": args.quick,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nSaved {args.out}")
    failed = any(run.get("errors") or run.get("skipped") for run in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
