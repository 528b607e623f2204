"""What the training plots cost beside the training itself, per unit.

Usage (from the repository root):

    .venv/bin/python benchmarks/training_plots.py            # 5 repeats per case
    .venv/bin/python benchmarks/training_plots.py --quick    # 2 repeats

For each case (a partition-sized anomaly model, a classifier, a regressor) it trains once
with ``train_model`` and draws the plots with ``render_training_plots`` several times in
this process, timing both (median of the repeats; the first draw also pays matplotlib's
import and font loading, reported apart). Prints a markdown table and writes it to
benchmarks/results/training_plots.md. No storage or HTTP: the plots' own cost only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cases() -> list[tuple[str, object, dict]]:
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_breast_cancer, load_diabetes

    rng = np.random.default_rng(0)
    n = 2000
    room = pd.DataFrame(
        {
            "at": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "co2": rng.normal(600, 40, n),
            "temperature": rng.normal(21, 1.5, n),
            "occupancy": rng.poisson(3, n),
        }
    )
    return [
        (
            "isolation_forest, 1 room x 2,000 rows (50 trees)",
            room,
            {"target": None, "algorithm": "isolation_forest", "params": {"n_estimators": 50}},
        ),
        (
            "random_forest, breast cancer 569 x 30 (100 trees)",
            load_breast_cancer(as_frame=True).frame,
            {"target": "target", "algorithm": "random_forest", "params": {}},
        ),
        (
            "hist_gradient_boosting, diabetes 442 x 10 (permutation importance)",
            load_diabetes(as_frame=True).frame,
            {"target": "target", "algorithm": "hist_gradient_boosting", "params": {}},
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5")
    args = parser.parse_args()
    repeats = 2 if args.quick else 5

    from shared.ml.plots import render_training_plots
    from shared.ml.train import train_model

    lines = [
        "| case | train s | plots s (median) | plots / train | plots | PNG kB total |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    first_draw = None
    for label, frame, spec in cases():
        started = time.perf_counter()
        trained = train_model(frame, features=None, task=None, **spec)
        train_s = time.perf_counter() - started
        times = []
        for _ in range(repeats + (1 if first_draw is None else 0)):
            started = time.perf_counter()
            plots = render_training_plots(trained, frame)
            times.append(time.perf_counter() - started)
        if first_draw is None:
            first_draw = times.pop(0)
        median = statistics.median(times)
        size_kb = sum(len(p) for p in plots.values()) / 1024
        lines.append(
            f"| {label} | {train_s:.2f} | {median:.3f} | {median / train_s:.2f} | "
            f"{', '.join(sorted(plots))} | {size_kb:.0f} |"
        )
    lines.append("")
    lines.append(f"First draw in a fresh process (matplotlib import + fonts): {first_draw:.2f} s")
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_plots.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
