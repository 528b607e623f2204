"""A 10,000-row online request, in every accepted body form, against onnxruntime in-process
and ``mlflow models serve`` on the same rows (the "Large online batches" part of issue 10).

Usage (from the repository root):

    .venv/bin/python benchmarks/large_batches.py                 # full run (mlflow too)
    .venv/bin/python benchmarks/large_batches.py --skip-mlflow   # no mlflow: its cells n/a
    .venv/bin/python benchmarks/large_batches.py --quick         # small model, few repeats

What it does, all on 127.0.0.1, in one run and on one model:

1. Trains one RandomForestClassifier (100 trees, 30 numeric features, n_jobs=1) with the
   platform's own ``train_model`` (benchmarks/predict_latency.py's helpers), starts an
   in-memory Azurite and the app (``LocalHost``), uploads the verified ONNX export as
   ``champion``.
2. Draws ``--batch`` rows (10,000) the model has not seen and times, warm, the median of
   ``--repeat`` calls of:
   - onnxruntime ``session.run`` in this process on those rows (the bare baseline: the
     platform's own session options, one thread, feed already built);
   - ``POST /predict/{model}`` with a records body, a columnar body
     (``{"columns", "data"}``) and MLflow's ``dataframe_split`` body;
   - ``POST /v2/models/{model}/infer`` with one [n, 30] FP32 tensor (flat data);
   - ``mlflow models serve`` ``/invocations`` with a ``dataframe_split`` body (the fitted
     pipeline's ``predict_proba``), mlflow in its own venv as predict_latency.py makes it.
   Every platform call asks for probabilities (mlflow answers them too); one keep-alive
   httpx client sends pre-encoded bytes and reads the whole answer (not parsing it). The
   contenders run in interleaved rounds (one call each per round), so a busy machine
   weighs on all of them alike; a POST of the columnar body to a path no function answers
   shows what the HTTP transport alone costs.
3. Checks that every form answers the same labels as onnxruntime on those rows.

Prints one markdown table (ms, ratio to onnxruntime and to mlflow) and writes it to
benchmarks/results/large_batches.md. Targets of the issue (reported, never asserted): the
most compact accepted form <= 0.5x mlflow and <= 4x onnxruntime in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:  # run as a script: the app's packages live at the root
        sys.path.insert(0, str(path))

import predict_latency as pl  # noqa: E402 - after the path set-up above
from summary import record  # noqa: E402 - beside this script

RESULTS = ROOT / "benchmarks" / "results" / "large_batches.md"
HTTP_TIMEOUT_S = 120.0


def interleaved(
    calls: dict[str, Callable[[], None]], repeat: int, warmup: int
) -> dict[str, tuple[float, float, float] | None]:
    """(median, min, max) ms of each call over ``repeat`` rounds, each round calling every
    contender once in turn: other work on the machine then weighs on all of them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            started = time.perf_counter_ns()
            call()
            samples[name].append((time.perf_counter_ns() - started) / 1e6)
    return {n: (statistics.median(s), min(s), max(s)) for n, s in samples.items()}


def bodies(names: list[str], rows: list[list[float]]) -> dict[str, bytes]:
    """Every accepted body form of the same rows, encoded once (the client's work is not
    what is measured)."""
    records = [dict(zip(names, row, strict=True)) for row in rows]
    flat = [v for row in rows for v in row]
    encode = json.dumps
    return {
        "records": encode({"records": records, "return_probabilities": True}).encode(),
        "columns": encode({"columns": names, "data": rows, "return_probabilities": True}).encode(),
        "dataframe_split": encode(
            {"dataframe_split": {"columns": names, "data": rows}, "return_probabilities": True}
        ).encode(),
        # A header row, then one line per row, floats as Python writes them (as pandas).
        "csv": "\n".join([",".join(names)] + [",".join(map(repr, row)) for row in rows]).encode(),
        "oip": encode(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(rows), len(names)],
                        "datatype": "FP32",
                        "data": flat,
                    }
                ]
            }
        ).encode(),
    }


JSON = "application/json"


def labels_of(form: str, answer: bytes) -> list[Any]:
    body = json.loads(answer)
    if form == "oip":
        return next(o["data"] for o in body["outputs"] if o["name"] == "label")
    return list(body["predictions"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--train-rows", type=int, default=20_000)
    p.add_argument("--features", type=int, default=30)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--batch", type=int, default=10_000, help="rows per request")
    p.add_argument("--repeat", type=int, default=15, help="timed calls per path (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--skip-mlflow", action="store_true", help="no mlflow venv or server")
    p.add_argument("--quick", action="store_true", help="2k training rows, 20 trees, 5 calls")
    args = p.parse_args(argv)
    if args.quick:
        args.train_rows, args.trees, args.repeat, args.warmup = 2000, 20, 5, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]
    import httpx
    import numpy as np
    import onnxruntime
    import sklearn

    from shared.ml.onnx_export import _session, onnx_inputs

    mlflow_version = None if args.skip_mlflow else pl.ensure_mlflow_venv()
    print(f"training: {args.train_rows} x {args.features}, {args.trees} trees", flush=True)
    trained = pl.train(args.train_rows, args.features, args.trees)
    features = trained.features
    names = [f["name"] for f in features]
    # Rows the model has not seen (another seed), as plain floats.
    frame = pl.make_frame(args.batch, args.features, seed=7)[names]
    rows = frame.to_numpy(dtype=np.float64).tolist()
    encoded = bodies(names, rows)

    session = _session(trained.onnx_bytes)
    feed = onnx_inputs(features, frame)
    expected = np.asarray(session.run(None, feed)[0]).ravel().tolist()
    notes: list[str] = []
    calls: dict[str, Callable[[], None]] = {"ort": lambda: session.run(None, feed)}

    with contextlib.ExitStack() as stack:
        host, token, model, _ = stack.enter_context(pl.platform_under_test(trained.onnx_bytes))
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        client = stack.enter_context(httpx.Client(base_url=host.url, timeout=HTTP_TIMEOUT_S))

        def post(
            path: str, body: bytes, status: int = 200, on: Any = client, ctype: str = ""
        ) -> None:
            sent = {**headers, "Content-Type": ctype} if ctype else headers
            r = on.post(path, content=body, headers=sent)
            if r.status_code != status:
                raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")

        # No function answers this path: the host reads the body and answers 404.
        calls["transport"] = lambda: post("/no-such-route", encoded["columns"], 404)
        paths = {
            "records": f"/predict/{model}",
            "columns": f"/predict/{model}",
            "dataframe_split": f"/predict/{model}",
            "csv": f"/predict/{model}?return_probabilities=true",
            "oip": f"/v2/models/{model}/infer",
        }
        for form, path in paths.items():
            ctype = "text/csv" if form == "csv" else ""
            first = client.post(
                path, content=encoded[form], headers={**headers, "Content-Type": ctype or JSON}
            )
            if first.status_code != 200:
                notes.append(f"{form}: answered {first.status_code} {first.text[:160]}")
                continue
            agree = np.mean(np.asarray(labels_of(form, first.content)) == expected)
            notes.append(f"{form}: labels agree with onnxruntime on {agree:.2%} of rows.")
            calls[form] = lambda path=path, body=encoded[form], ct=ctype: post(path, body, ctype=ct)
        if mlflow_version is not None:
            workdir = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            print("mlflow: saving the model and starting `mlflow models serve` ...", flush=True)
            server = pl.start_mlflow(
                trained.skops_bytes, {"columns": names, "data": rows[:1]}, workdir
            )
            stack.callback(server.stop)
            mlflow_client = stack.enter_context(
                httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S)
            )
            body = json.dumps({"dataframe_split": {"columns": names, "data": rows}}).encode()
            calls["mlflow"] = lambda: post("/invocations", body, on=mlflow_client)
        print(f"timing {', '.join(calls)}: {args.repeat} interleaved rounds ...", flush=True)
        timings = interleaved(calls, args.repeat, args.warmup)

    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}",
        "model": f"RandomForestClassifier({args.trees} trees, n_jobs=1) on {args.train_rows} x"
        f" {args.features}, served from its verified ONNX export",
        "request": f"{args.batch} rows x {args.features} float features, probabilities asked;"
        f" median of {args.repeat} warm calls ({args.warmup} discarded)",
        "versions": f"scikit-learn {sklearn.__version__}, onnxruntime {onnxruntime.__version__},"
        f" mlflow {mlflow_version or 'n/a (--skip-mlflow)'}",
        "load average (1 min)": f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
        f" ({os.cpu_count()} cores)",
    }
    report = render(meta, timings, {k: len(v) for k, v in encoded.items()}, notes)
    record_headlines(timings, args.batch)
    print()
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


def record_headlines(timings: dict[str, tuple[float, float, float] | None], rows: int) -> None:
    """The most compact accepted form (the fastest platform form) vs onnxruntime and mlflow,
    for benchmarks/run_all.py's table."""
    medians = {key: t[0] for key, t in timings.items() if t is not None}
    forms = [k for k in ("columns", "dataframe_split", "oip") if k in medians]
    if not forms:
        return
    best = min(forms, key=medians.__getitem__)
    measure = f"{rows:,}-row request, {best} body"
    for key, versus, target in (
        ("ort", "onnxruntime in process", "<= 4x onnxruntime"),
        ("mlflow", "mlflow models serve", "<= 0.5x mlflow"),
    ):
        if key in medians:
            record("large batches", measure, medians[best], medians[key], versus, "ms", target)


LABELS = {
    "ort": "onnxruntime `session.run` in-process (feed built; baseline)",
    "transport": "HTTP only: the columnar body to a path no function answers (404)",
    "records": "`POST /predict/{model}` records body",
    "columns": '`POST /predict/{model}` columnar body (`{"columns", "data"}`)',
    "dataframe_split": "`POST /predict/{model}` MLflow `dataframe_split` body",
    "csv": "`POST /predict/{model}` CSV body (`text/csv`, options in the query string)",
    "oip": "`POST /v2/models/{model}/infer`, one [n, k] FP32 tensor",
    "mlflow": "`mlflow models serve` `/invocations`, `dataframe_split` body",
}


def render(
    meta: dict[str, str],
    timings: dict[str, tuple[float, float, float] | None],
    sizes: dict[str, int],
    notes: list[str],
) -> str:
    ort = timings.get("ort")
    mlflow = timings.get("mlflow")
    lines = ["# Large online batches", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += [
        "",
        "| path | body MB | median ms | min ms | max ms | µs/row | / onnxruntime (target"
        " <= 4) | / mlflow (target <= 0.5) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = int(meta["request"].split()[0])
    for key, label in LABELS.items():
        t = timings.get(key)
        size = f"{sizes[key] / 1e6:.1f}" if key in sizes else ""
        if key in ("mlflow", "transport"):
            size = f"{sizes['columns' if key == 'transport' else 'dataframe_split'] / 1e6:.1f}"
        if t is None:
            lines.append(f"| {label} | {size} | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        med, lo, hi = t
        vs_ort = f"{med / ort[0]:.1f}" if ort else "n/a"
        vs_mlflow = f"{med / mlflow[0]:.2f}" if mlflow else "n/a"
        lines.append(
            f"| {label} | {size} | {med:.1f} | {lo:.1f} | {hi:.1f} | {med * 1000 / rows:.1f}"
            f" | {vs_ort} | {vs_mlflow} |"
        )
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
