"""Batch scoring throughput and memory: the platform's engine vs bare scikit-learn.

Usage (from the repository root):

    .venv/bin/python benchmarks/batch_scoring.py                  # 250k, 500k, 1M rows + e2e
    .venv/bin/python benchmarks/batch_scoring.py --quick          # 50k, 100k, 200k rows
    .venv/bin/python benchmarks/batch_scoring.py --no-e2e --repeat 1

What it does: generates ``--rows`` rows x 30 numeric features once (Parquet, pyarrow's
default row groups: one row group up to 1Mi rows, the worst case for memory), trains a
``RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)`` inside the
platform's pipeline (``shared.ml.pipeline.build_pipeline``) on 20,000 separate rows and
exports it with the platform's ``shared.ml.onnx_export.export_onnx``. Then, for each size
(the first N rows of the same file), it times in a *fresh subprocess* per measurement:

* ``sklearn predict_proba``: the fitted forest's ``predict_proba`` on the whole float32
  matrix at once (loaded before the clock starts; no I/O, no output);
* ``sklearn predict_proba, 50k chunks``: the same in 50,000-row slices;
* ``platform batch engine``: ``shared.prediction.batch.score_parquet`` on the Parquet file,
  writing the scored Parquet (id + prediction + probability + model_version); the clock
  includes loading the ONNX model (and its tree-blocked rewrite, checked on real rows).

At the largest size it also times the engine on the *original* ONNX graph (no tree
blocking, to show what that rewrite buys) and, unless ``--no-e2e``, one end-to-end run:
in-memory Azurite, ``function_app`` served by the local host in this process, the model
uploaded with ``POST /models/{name}/versions``, the Parquet dropped into container
``scoring`` (row groups of 125,000 rows, so the planner can fan out), then ``POST /predict``
and polling ``GET /predict/jobs/{id}`` until it is done (wall time from POST to 200).

Peak memory is the peak RSS (VmHWM) of the measuring process (Python + imports + model + data);
for scikit-learn it includes the input matrix, which must be in memory. Every timing is
repeated ``--repeat`` times (interleaved) and the fastest kept; CPU seconds are reported
too because the machine may be shared. Prints a markdown table and writes it to
benchmarks/results/batch_scoring.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import resource
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from summary import record  # noqa: E402 - beside this script (sys.path[0])

RESULTS = ROOT / "benchmarks" / "results" / "batch_scoring.md"
N_FEATURES = 30
N_TRAIN = 20_000
CHUNK = 50_000
TARGET_RATIO = 1.3
MEASURE_TIMEOUT_S = 1_800
E2E_TIMEOUT_S = 1_200
E2E_ROW_GROUP = 125_000
FEATURES = [{"name": f"f{i:02d}", "dtype": "number"} for i in range(N_FEATURES)]
METHODS = {
    "sklearn": "sklearn predict_proba (all rows)",
    "sklearn_chunks": "sklearn predict_proba, 50k chunks",
    "platform": "platform batch engine (Parquet in/out)",
    "platform_unblocked": "platform engine, original ONNX graph",
    "e2e": "end to end: HTTP + Azurite + queue",
}


# --- data and model ---------------------------------------------------------------------------
def make_rows(n: int, seed: int) -> tuple[Any, Any]:
    """n x 30 normal features; the label depends on a few of them, with noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    signal = X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + 0.3 * X[:, 4]
    y = (signal + rng.normal(0, 0.7, n) > 0).astype(np.int64)
    return X, y


def prepare(workdir: Path, sizes: list[int]) -> None:
    """Write the scoring Parquet, the ONNX export and the fitted forest into workdir."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.ensemble import RandomForestClassifier

    from shared.ml.onnx_export import export_onnx
    from shared.ml.pipeline import build_pipeline

    names = [f["name"] for f in FEATURES]
    X_train, y_train = make_rows(N_TRAIN, seed=0)
    frame = pd.DataFrame(X_train, columns=names)
    forest = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
    pipeline = build_pipeline(FEATURES, forest, scale=False, dense=True).fit(frame, y_train)
    onnx_bytes, info = export_onnx(
        pipeline, frame.head(200), "classification", features=FEATURES, classes=[0, 1]
    )
    if onnx_bytes is None:
        raise SystemExit(f"ONNX export failed: {info}")
    (workdir / "model.onnx").write_bytes(onnx_bytes)
    # Our own file in our own temp dir: pickle is fine for handing the forest to a subprocess.
    (workdir / "forest.pkl").write_bytes(pickle.dumps(pipeline.named_steps["model"]))
    rows = max(sizes)
    X, _ = make_rows(rows, seed=1)
    table = pa.table(
        {"id": np.arange(rows, dtype=np.int64), **{n: X[:, i] for i, n in enumerate(names)}}
    )
    pq.write_table(table, workdir / "scoring.parquet")  # default row groups (<= 1Mi rows)
    pq.write_table(table, workdir / "scoring-e2e.parquet", row_group_size=E2E_ROW_GROUP)
    for size in sizes:  # here, so no measurement pays for slicing the big file
        _head(workdir / "scoring.parquet", size)
        _head(workdir / "scoring-e2e.parquet", size)


# --- one measurement (runs in a fresh subprocess) ------------------------------------------------
def _rss_mb() -> float:
    """Peak RSS of this process's memory image. ``ru_maxrss`` is no good here: Linux keeps
    it across fork + exec, so a child would report its parent's peak."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _head(path: Path, rows: int) -> Path:
    """The first ``rows`` rows of the scoring file (same rows for every method)."""
    import pyarrow.parquet as pq

    if pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    out = path.with_name(f"{path.stem}-{rows}.parquet")
    if not out.exists():
        table = pq.read_table(path).slice(0, rows)
        row_group = E2E_ROW_GROUP if "e2e" in path.stem else None
        pq.write_table(table, out, row_group_size=row_group)
    return out


def measure(method: str, workdir: Path, rows: int) -> dict[str, Any]:
    if method.startswith("sklearn"):
        import numpy as np
        import pyarrow.parquet as pq

        forest = pickle.loads((workdir / "forest.pkl").read_bytes())  # our own file
        table = pq.read_table(_head(workdir / "scoring.parquet", rows))
        X = np.column_stack([table.column(f["name"]).to_numpy() for f in FEATURES]).astype(
            np.float32
        )
        del table
        before = _rss_mb()
        started, cpu = time.perf_counter(), time.process_time()
        if method == "sklearn":
            forest.predict_proba(X)
        else:
            for start in range(0, len(X), CHUNK):
                forest.predict_proba(X[start : start + CHUNK])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        return {"seconds": seconds, "cpu": cpu, "peak_mb": _rss_mb(), "before_mb": before}
    if method.startswith("platform"):
        import pyarrow.parquet as pq

        from shared.prediction.batch import onnx_blocks as batch_onnx
        from shared.prediction.batch.engine import SingleVersion, score_parquet
        from shared.prediction.batch.files import OutputWriter

        source = _head(workdir / "scoring.parquet", rows)
        onnx_bytes = (workdir / "model.onnx").read_bytes()
        if method == "platform_unblocked":
            batch_onnx.MIN_BYTES = 1 << 62  # never rewrite: onnxruntime on the exported graph
        before = _rss_mb()
        out = workdir / f"scored-{method}-{rows}.parquet"
        started, cpu = time.perf_counter(), time.process_time()
        servable = batch_onnx.batch_servable(onnx_bytes, FEATURES, "classification", [0, 1])
        loaded = time.perf_counter() - started
        with out.open("wb") as sink:
            writer = OutputWriter(sink)
            stats = score_parquet(str(source), SingleVersion("bench", 1, servable), writer)
            writer.close()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert stats.rows_scored == rows and pq.ParquetFile(out).metadata.num_rows == rows
        blocked = bool(getattr(servable.session, "blocked", False))
        out.unlink()
        return {
            "seconds": seconds,
            "cpu": cpu,
            "peak_mb": _rss_mb(),
            "before_mb": before,
            "load_s": loaded,
            "blocked": blocked,
        }
    if method == "e2e":
        return measure_e2e(workdir, rows)
    raise SystemExit(f"unknown method {method}")


@contextlib.contextmanager
def local_platform() -> Iterator[tuple[str, str]]:
    """In-memory Azurite + function_app on the local host, in this process: (url, password)."""
    from devhost.azurite import start_azurite

    azurite = start_azurite(in_memory=True)
    password = secrets.token_urlsafe(24)
    os.environ.update(
        {
            "APP_ENVIRONMENT": "local",
            "LOCAL_SETTINGS_PATH": str(Path(tempfile.gettempdir()) / "no-local-settings.json"),
            "STORAGE_CONNECTION_STRING": azurite.connection_string,
            "AzureWebJobsStorage": azurite.connection_string,
            "BOOTSTRAP_ADMIN_USERNAME": "admin",
            "BOOTSTRAP_ADMIN_PASSWORD": password,
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "LOG_LEVEL": "WARNING",
            "TRAINING_SCHEDULE": "0 0 2 1 * *",
            "MAX_MODEL_BYTES": str(500 * 1024 * 1024),
        }
    )
    from shared.settings import get_settings

    get_settings.cache_clear()  # the app's container reads the settings set above
    import function_app
    from devhost.server import LocalHost
    from devhost.settings import HostConfig

    config = HostConfig.load(ROOT / "host.json")
    host = LocalHost(function_app.app, port=0, config=config, timers=False)
    host.start()
    try:
        yield host.url, password
    finally:
        host.stop()
        function_app.services.close()
        azurite.stop()


def measure_e2e(workdir: Path, rows: int) -> dict[str, Any]:
    import httpx

    from shared.http import current_services

    source = _head(workdir / "scoring-e2e.parquet", rows)
    with local_platform() as (url, password), httpx.Client(base_url=url, timeout=600) as client:
        token = client.post(
            "/auth/jwt/login", data={"username": "admin", "password": password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        name = "bench-rf"
        r = client.post(
            f"/models/{name}/versions",
            headers=headers,
            files={
                "model_file": (
                    "model.onnx",
                    (workdir / "model.onnx").read_bytes(),
                    "application/octet-stream",
                )
            },
            data={"alias": "champion"},
        )
        if r.status_code != 201:
            raise SystemExit(f"model upload failed: {r.status_code} {r.text}")
        with source.open("rb") as data:  # as ADF's Copy activity: straight into Blob
            current_services().storage.container("scoring").upload_blob(
                f"{name}/part-0001.parquet", data, overwrite=True
            )
        before = _rss_mb()
        started, cpu = time.perf_counter(), time.process_time()
        r = client.post("/predict", headers=headers, json={"model": name})
        if r.status_code != 202:
            raise SystemExit(f"POST /predict failed: {r.status_code} {r.text}")
        location = r.headers["location"]
        deadline = time.monotonic() + E2E_TIMEOUT_S
        while time.monotonic() < deadline:
            r = client.get(location, headers=headers)
            if r.status_code == 200:
                break
            time.sleep(0.2)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        job = r.json()
        if job.get("status") != "succeeded" or job.get("rows_scored") != rows:
            raise SystemExit(f"e2e job did not succeed: {json.dumps(job)[:2000]}")
        return {
            "seconds": seconds,
            "cpu": cpu,
            "peak_mb": _rss_mb(),
            "before_mb": before,
            "chunks": job["chunks"]["total"],
        }


def run_measurement(method: str, workdir: Path, rows: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", method, "--workdir", str(workdir)]
    command += ["--rows", str(rows)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=MEASURE_TIMEOUT_S
    )
    if done.returncode != 0:
        raise SystemExit(f"{method} at {rows} rows failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the report ---------------------------------------------------------------------------------
def best(results: list[dict[str, Any]]) -> dict[str, Any]:
    return min(results, key=lambda r: r["seconds"])


def report(measured: dict[tuple[int, str], dict[str, Any]], sizes: list[int], command: str) -> str:
    lines = [
        "## Batch scoring: platform engine vs bare scikit-learn",
        "",
        f"RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1) on {N_TRAIN:,}"
        f" rows x {N_FEATURES} numeric features; the same model scored by scikit-learn and,"
        " exported with `export_onnx`, by the platform.",
        "",
        "| rows | method | seconds | cpu s | x vs sklearn | peak MB |",
        "| ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for rows in sizes:
        base = measured[(rows, "sklearn")]["seconds"]
        for method in METHODS:
            result = measured.get((rows, method))
            if result is None:
                continue
            extra = ""
            if method == "e2e":
                extra = f" ({result['chunks']} chunks)"
            lines.append(
                f"| {rows:,} | {METHODS[method]}{extra} | {result['seconds']:.2f} |"
                f" {result['cpu']:.2f} | {result['seconds'] / base:.2f} |"
                f" {result['peak_mb']:.0f} |"
            )
    largest = sizes[-1]
    ratio = measured[(largest, "platform")]["seconds"] / measured[(largest, "sklearn")]["seconds"]
    peaks = [measured[(rows, "platform")]["peak_mb"] for rows in sizes]
    spread = (max(peaks) - min(peaks)) / min(peaks)
    load = measured[(largest, "platform")]["load_s"]
    blocked = measured[(largest, "platform")]["blocked"]
    lines += [
        "",
        f"Target (platform <= {TARGET_RATIO}x sklearn predict_proba at {largest:,} rows):"
        f" {ratio:.2f}x -> {'met' if ratio <= TARGET_RATIO else 'NOT met'}.",
        f"Platform peak memory at {', '.join(f'{s:,}' for s in sizes)} rows:"
        f" {', '.join(f'{p:.0f}' for p in peaks)} MB (spread {spread:.0%}; independent of row"
        f" count: {'yes' if spread <= 0.15 else 'no'}).",
        f"The platform time includes loading the model ({load:.2f} s at {largest:,} rows,"
        f" tree-blocked graph {'kept' if blocked else 'NOT kept'} after its check on real rows).",
        "",
        f"Machine: nproc={os.cpu_count()}, Python {platform.python_version()},"
        f" {platform.system()} {platform.machine()}; load average at the end"
        f" {os.getloadavg()[0]:.2f}; fastest of the repeats;"
        f" {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sizes", type=int, nargs="*", help="default: rows/4, rows/2, rows")
    parser.add_argument("--quick", action="store_true", help="200k rows, no e2e")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-e2e", action="store_true")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, Path(args.workdir), args.rows)))
        return
    sys.path.insert(0, str(ROOT))
    rows = 200_000 if args.quick else args.rows
    sizes = sorted(args.sizes or [rows // 4, rows // 2, rows])
    e2e = not (args.no_e2e or args.quick)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        prepare(workdir, sizes)
        print(f"prepared data and model in {time.perf_counter() - started:.1f} s", flush=True)
        runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for repeat in range(args.repeat):
            for size in sizes:
                for method in ("sklearn", "platform", "sklearn_chunks"):
                    result = run_measurement(method, workdir, size)
                    runs.setdefault((size, method), []).append(result)
                    print(
                        f"[{repeat + 1}/{args.repeat}] {size:,} {method}:"
                        f" {result['seconds']:.2f} s, peak {result['peak_mb']:.0f} MB",
                        flush=True,
                    )
        largest = sizes[-1]
        extra = ["platform_unblocked"] + (["e2e"] if e2e else [])
        for method in extra:
            result = run_measurement(method, workdir, largest)
            runs[(largest, method)] = [result]
            print(f"{largest:,} {method}: {result['seconds']:.2f} s", flush=True)
        measured = {key: best(results) for key, results in runs.items()}
    command = " ".join(
        [".venv/bin/python", "benchmarks/batch_scoring.py", *map(shlex.quote, sys.argv[1:])]
    )
    text = report(measured, sizes, command)
    largest = sizes[-1]
    record(
        "batch scoring",
        f"{largest:,} rows, Parquet in and out",
        measured[(largest, "platform")]["seconds"],
        measured[(largest, "sklearn")]["seconds"],
        "sklearn predict_proba",
        "s",
        f"<= {TARGET_RATIO}x",
    )
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
