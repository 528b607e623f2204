"""ONNX export of tree ensembles: skl2onnx's own converters vs the array-built ones
(``shared/ml/onnx_trees.py``), and a training unit's whole cost vs the bare fit.

Per model, in one run on the same fitted estimator (each mode in a fresh process, so
skl2onnx's converter registry is untouched by the other):

* convert: ``convert_sklearn`` of the estimator alone, stock vs array-built;
* session: opening the result in onnxruntime (what the parity check and serving pay);
* nodes: ONNX nodes in the graph.

Then, per room of a partitioned anomaly job, the platform's unit work in process
(``train_model``: split, fit, metrics, profile, skops, ONNX export and parity check)
against the bare loop of the issue (fit + decision_function on the same rows/params).
Storage and queue round trips are not included here (``train_partitions.py`` has them).

    .venv/bin/python benchmarks/onnx_export.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = {"isolation_forest": ("iforest", 1_440, 3, 100), "random_forest": ("rf", 20_000, 30, 100)}


def _fit(kind: str, rows: int, features: int, trees: int):
    import numpy as np
    from sklearn.ensemble import IsolationForest, RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    if kind == "iforest":
        return IsolationForest(n_estimators=trees, random_state=0).fit(X), X
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=rows) > 0).astype(int)
    return RandomForestClassifier(n_estimators=trees, random_state=0, n_jobs=1).fit(X, y), X


def measure(mode: str, kind: str, rows: int, features: int, trees: int) -> dict:
    """One mode in this process: convert + session times, node count."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from shared.ml.onnx_export import _session

    model, X = _fit(kind, rows, features, trees)
    if mode == "array-built":
        from shared.ml.onnx_trees import register_tree_converters

        register_tree_converters()
    options = {id(model): {"zipmap": False}} if kind == "rf" else None
    started = time.perf_counter()
    graph = convert_sklearn(
        model,
        initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
        options=options,
        target_opset={"": 21, "ai.onnx.ml": 3},
    )
    convert = time.perf_counter() - started
    data = graph.SerializeToString()
    started = time.perf_counter()
    _session(data)
    session = time.perf_counter() - started
    return {"convert": convert, "session": session, "nodes": len(graph.graph.node)}


def units(rooms: int, rows: int, trees: int) -> dict:
    """Per room: the platform's unit work in process vs the bare loop, same rows/params."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import IsolationForest

    from shared.ml.train import train_model

    rng = np.random.default_rng(1)
    frames = [
        pd.DataFrame(
            {
                "temp": rng.normal(20 + r % 5, 2, rows),
                "humidity": rng.normal(50, 5, rows),
                "co2": rng.normal(450 + 10 * r, 40, rows),
            }
        )
        for r in range(rooms)
    ]
    train_model(
        frames[0],
        target=None,
        features=None,
        task=None,
        algorithm="isolation_forest",
        params={"n_estimators": trees},
    )  # warm imports
    started = time.perf_counter()
    for frame in frames:
        model = IsolationForest(n_estimators=trees, n_jobs=1, random_state=42).fit(frame)
        model.decision_function(frame)
    bare = time.perf_counter() - started
    started = time.perf_counter()
    for frame in frames:
        trained = train_model(
            frame,
            target=None,
            features=None,
            task=None,
            algorithm="isolation_forest",
            params={"n_estimators": trees},
        )
        assert trained.onnx_bytes is not None, trained.onnx_parity
    platform = time.perf_counter() - started
    return {"rooms": rooms, "rows": rows, "bare": bare, "platform": platform}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller models, 4 rooms")
    parser.add_argument("--rooms", type=int, default=24)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        mode, kind, rows, features, trees = json.loads(args.measure)
        print(json.dumps(measure(mode, kind, rows, features, trees)))
        return 0
    lines = [
        "| model | converter | convert s | session s | nodes | convert x faster |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (kind, rows, features, trees) in MODELS.items():
        if args.quick:
            rows, trees = min(rows, 2_000), 20
        label = f"{name}, {trees} trees, {features} features, {rows:,} rows"
        results = {}
        for mode in ("skl2onnx", "array-built"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    json.dumps([mode, kind, rows, features, trees]),
                ],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        base = results["skl2onnx"]["convert"]
        for mode, r in results.items():
            lines.append(
                f"| {label} | {mode} | {r['convert']:.3f} | {r['session']:.3f} | {r['nodes']} |"
                f" {base / r['convert']:.1f} |"
            )
    rooms = 4 if args.quick else args.rooms
    u = units(rooms, 1_440, 20 if args.quick else 100)
    lines += [
        "",
        "| rooms x rows | bare loop s | platform unit work s | ratio | per room s |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| {u['rooms']} x {u['rows']:,} | {u['bare']:.2f} | {u['platform']:.2f} |"
        f" {u['platform'] / u['bare']:.2f} | {u['platform'] / u['rooms']:.3f} |",
    ]
    table = "\n".join(lines)
    print(table)
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "onnx_export.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
