"""Every benchmark in one run, one table (issue 10): online latency and throughput vs
scikit-learn and ``mlflow models serve``, large online batches, batch scoring, cold start,
training vs the bare loop.

Usage (from the repository root, after ``make install``):

    .venv/bin/python benchmarks/run_all.py              # the issues' sizes (about an hour)
    .venv/bin/python benchmarks/run_all.py --quick      # every script's smoke size
    .venv/bin/python benchmarks/run_all.py --skip-mlflow --only training online

Each script runs in its own process, one after the other (they would skew each other's
numbers side by side), and still writes its own detailed report to
``benchmarks/results/``. Each records its headline numbers (``summary.record``); this
prints them as one table and writes it to ``benchmarks/results/all.md``. A script that
fails is named in the table's notes and the others still run.
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "all.md"

# (group, script, arguments for the full run, arguments for --quick)
SCRIPTS: list[tuple[str, str, list[str], list[str]]] = [
    ("online", "predict_latency.py", [], ["--quick"]),
    ("large batches", "large_batches.py", [], ["--quick"]),
    ("batch scoring", "batch_scoring.py", [], ["--quick"]),
    ("cold start", "cold_start.py", [], ["--quick"]),
    ("training", "train_vs_bare.py", [], ["--quick", "--trees", "20"]),
]
MLFLOW_SCRIPTS = {"predict_latency.py", "large_batches.py"}


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit == "req/s":
        return f"{value:,.0f} req/s"
    return f"{value:,.2f} s" if value < 100 else f"{value:,.0f} s"


def table(rows: list[dict], failed: list[str], command: str, minutes: float) -> str:
    lines = [
        "| area | measure | ours | baseline | ours / baseline | target |",
        "| --- | --- | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        baseline = f"{_number(row['baseline'], row['unit'])} ({row['versus']})"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(
            f"| {row['area']} | {row['measure']} | {_number(row['ours'], row['unit'])} "
            f"| {baseline} | {ratio} | {row['target'] or '-'} |"
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines += [
        "",
        f"Machine: {cores} cores, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}; load average at the end {os.getloadavg()[0]:.1f}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {minutes:.0f} min in all.",
    ]
    if failed:
        lines += ["", "Did not finish: " + "; ".join(failed) + "."]
    lines += ["", f"Command: `{command}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="each script's smoke size")
    parser.add_argument("--skip-mlflow", action="store_true", help="no mlflow contender")
    groups = sorted({group for group, *_ in SCRIPTS})
    parser.add_argument("--only", nargs="+", choices=groups, help="some areas only")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    failed: list[str] = []
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as sink:
        summary = Path(sink.name)
    env = {**os.environ, "BENCH_SUMMARY": str(summary)}
    try:
        for group, script, full, quick in SCRIPTS:
            if args.only and group not in args.only:
                continue
            path = ROOT / "benchmarks" / script
            if not path.exists():
                failed.append(f"{script} (absent)")
                continue
            extra = quick if args.quick else full
            if args.skip_mlflow and script in MLFLOW_SCRIPTS:
                extra = [*extra, "--skip-mlflow"]
            print(f"== {script} {' '.join(extra)}", flush=True)
            try:
                done = subprocess.run(
                    [sys.executable, str(path), *extra], cwd=ROOT, env=env, timeout=args.timeout
                )
            except subprocess.TimeoutExpired:
                failed.append(f"{script} (over {args.timeout:.0f} s)")
                continue
            if done.returncode != 0:
                failed.append(f"{script} (exit {done.returncode})")
        rows = [json.loads(line) for line in summary.read_text().splitlines() if line.strip()]
    finally:
        summary.unlink(missing_ok=True)
    command = " ".join([".venv/bin/python", "benchmarks/run_all.py", *(argv or sys.argv[1:])])
    text = table(rows, failed, command, (time.perf_counter() - started) / 60)
    print("\n" + text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
