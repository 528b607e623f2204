"""Warm single-record prediction latency and 8-client throughput, against scikit-learn and
``mlflow models serve`` (the speed part of the online-prediction issue).

Usage (from the repository root):

    .venv/bin/python benchmarks/predict_latency.py                 # full run (mlflow too)
    .venv/bin/python benchmarks/predict_latency.py --skip-mlflow   # no mlflow: its cells n/a
    .venv/bin/python benchmarks/predict_latency.py --quick         # small model, short loops
    .venv/bin/python benchmarks/predict_latency.py --profile       # + cProfile of the handler

What it does, all on 127.0.0.1:

1. Trains one RandomForestClassifier (100 trees, n_jobs=1) on 20,000 x 30 seeded numeric
   rows with the platform's own ``train_model``, which returns the fitted Pipeline, its
   skops bytes and a parity-verified ONNX export. Every contender serves that one model.
2. Starts an in-memory Azurite and the app in this process (``LocalHost`` on a free port,
   no timers or queue pollers), logs in as the bootstrap admin and uploads the ONNX export
   as a version with alias ``champion`` (the ONNX fast path).
3. Latency, warm, one record per call (warm-up discarded; p50/p95/p99/mean):
   sklearn ``pipeline.predict_proba`` on a one-row DataFrame (the baseline), the bare
   forest on a numpy row, onnxruntime alone, the ``predict`` function of ``function_app``
   called in-process with a built ``HttpRequest``, and ``POST /predict/{model}`` over HTTP
   with one keep-alive client.
4. Throughput with 8 concurrent keep-alive clients for ``--duration`` seconds against the
   local host and against ``mlflow models serve --env-manager local`` serving the same
   fitted pipeline (``pyfunc_predict_fn="predict_proba"``). mlflow lives in its own venv,
   ``benchmarks/.venv-mlflow`` (created once and reused; never in requirements.txt).

Prints markdown tables and writes them to benchmarks/results/predict_latency.md. Nothing
here asserts a time: the targets (<= 0.5x sklearn p50, >= 3x mlflow throughput) are
reported, not enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import os
import platform
import pstats
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
from summary import record  # noqa: E402 - beside this script (sys.path[0])

if str(ROOT) not in sys.path:  # run as a script: the app's packages live at the root
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results" / "predict_latency.md"
MLFLOW_VENV = ROOT / "benchmarks" / ".venv-mlflow"
# mlflow 3.18.0 is listed on the index but its mlflow-skinny 3.18.0 is not served there,
# so the newest installable release is pinned. The ML pins match requirements.txt so that
# mlflow serves the very same scikit-learn code as the platform was trained with.
MLFLOW_REQUIREMENTS = (
    "mlflow==3.17.2",
    "scikit-learn==1.9.1",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "skops==0.16.0",
)
ADMIN = "admin"
MODEL = "bench-rf"
TARGET = "target"

# Every wait is bounded by one of these.
PIP_TIMEOUT_S = 1800.0
MLFLOW_SAVE_TIMEOUT_S = 300.0
MLFLOW_START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 30.0
DISTINCT_ROWS = 256  # records cycled through, so no contender answers one row over and over


# --- data and model ------------------------------------------------------------------------
def make_frame(rows: int, features: int, seed: int = 0) -> Any:
    """``rows`` x ``features`` standard-normal numbers and a noisy binary target.

    The target depends non-linearly on a handful of features plus noise, so the forest
    grows realistic (deep, not trivially pure) trees.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    signal_ = X[:, 0] + 0.8 * X[:, 1] * X[:, 2] - 0.6 * np.abs(X[:, 3]) + 0.5 * X[:, 4] ** 2
    noisy = signal_ + rng.normal(0, 1.0, rows)
    frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(features)])
    frame[TARGET] = (noisy > np.median(noisy)).astype(np.int64)
    return frame


def train(rows: int, features: int, trees: int) -> Any:
    """The platform's own training path: fitted Pipeline + skops + verified ONNX."""
    from shared.ml.train import train_model

    trained = train_model(
        make_frame(rows, features),
        target=TARGET,
        features=None,
        task="classification",
        algorithm="random_forest",
        params={"n_estimators": trees, "random_state": 0, "n_jobs": 1},
    )
    if trained.onnx_bytes is None:
        raise SystemExit(f"ONNX export not verified: {trained.onnx_parity}")
    return trained


# --- measurement helpers -------------------------------------------------------------------
@dataclass
class Stats:
    """Latency percentiles of one contender, in milliseconds."""

    name: str
    n: int
    p50: float
    p95: float
    p99: float
    mean: float


def percentile(sorted_ms: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    index = min(len(sorted_ms) - 1, max(0, round(q / 100 * len(sorted_ms) + 0.5) - 1))
    return sorted_ms[index]


def summarize(name: str, samples_ms: list[float]) -> Stats:
    ordered = sorted(samples_ms)
    return Stats(
        name,
        len(ordered),
        percentile(ordered, 50),
        percentile(ordered, 95),
        percentile(ordered, 99),
        statistics.fmean(ordered),
    )


def time_calls(
    name: str, call: Callable[[int], None], iterations: int, warmup: int, max_seconds: float
) -> Stats:
    """Run ``call(i)`` ``warmup`` times untimed, then up to ``iterations`` timed calls or
    ``max_seconds``, whichever ends first."""
    for i in range(warmup):
        call(i)
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    for i in range(iterations):
        started = time.perf_counter_ns()
        call(i)
        samples.append((time.perf_counter_ns() - started) / 1e6)
        if time.perf_counter() > deadline:
            break
    return summarize(name, samples)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a live process and its live descendants, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: split after the last ')'.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    family, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in family:
                family.add(child)
                frontier.append(child)
    return sum(cpu.get(p, 0.0) for p in family)


# --- the platform under test ---------------------------------------------------------------
def app_env(connection_string: str, admin_password: str) -> dict[str, str]:
    """tests/conftest.py's TEST_ENV, minus its shortened test timings (auth and alias caches
    at their production defaults, so the warm path is measured as deployed), with the
    prediction log off and quiet logging. The per-user predict quota is off: one user sends
    every request here, and with the default 6,000 a minute the throughput run was answered
    429 after its first ~1,500 requests (counted as errors, and its req/s was the quota)."""
    return {
        "APP_ENVIRONMENT": "local",
        "LOCAL_SETTINGS_PATH": str(ROOT / "tests" / "no-local-settings.json"),
        "BOOTSTRAP_ADMIN_USERNAME": ADMIN,
        "BOOTSTRAP_ADMIN_PASSWORD": admin_password,
        "LOG_LEVEL": "WARNING",
        "PREDICTION_LOG_SAMPLE_RATE": "0",
        "RATE_LIMIT_PREDICT": "off",
        "STORAGE_CONNECTION_STRING": connection_string,
        "AzureWebJobsStorage": connection_string,
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
    }


def login(client: Any, password: str) -> str:
    r = client.post("/auth/jwt/login", data={"username": ADMIN, "password": password})
    r.raise_for_status()
    return str(r.json()["access_token"])


def upload_onnx(client: Any, token: str, model: str, onnx_bytes: bytes) -> int:
    """Register the ONNX export as a new version and point ``champion`` at it."""
    r = client.post(
        f"/models/{model}/versions",
        headers={"Authorization": f"Bearer {token}"},
        data={"alias": "champion", "description": "predict_latency benchmark"},
        files=[("model_file", ("model.onnx", onnx_bytes, "application/octet-stream"))],
    )
    if r.status_code != 201:
        raise SystemExit(f"upload failed: {r.status_code} {r.text[:500]}")
    return int(r.json()["version"])


def predict_function(host: Any) -> Callable[[Any], Any]:
    """The registered user function of ``predict``, from the host's function list
    (``FunctionApp.get_functions()`` may run only once per app, and the host did)."""
    for info in host.functions:
        if info.name == "predict":
            return info.user_function  # type: ignore[no-any-return]
    raise SystemExit("function_app has no 'predict' function")


# --- load generator (runs in its own process, see run_load) --------------------------------
def loadgen_main(args: argparse.Namespace) -> int:
    """``--loadgen``: N threads, each with its own keep-alive httpx.Client, POST the bodies
    round-robin for ``duration`` seconds; print one JSON line with the counts."""
    import httpx

    spec = json.loads(Path(args.loadgen).read_text())
    bodies = [b.encode() for b in spec["bodies"]]
    headers = spec["headers"]
    threads = int(spec["threads"])
    duration = float(spec["duration"])
    max_requests = int(spec["max_requests"])
    ready = threading.Barrier(threads + 1)
    # Released only after the deadline is set: a worker must never read it before that.
    go = threading.Event()
    results: list[tuple[int, int, list[float]]] = [(0, 0, [])] * threads
    stop_at: list[float] = [0.0]

    def worker(index: int) -> None:
        ok = errors = 0
        latencies: list[float] = []
        with httpx.Client(base_url=spec["url"], timeout=HTTP_TIMEOUT_S) as client:
            for i in range(10):  # connect and warm this connection before the clock starts
                client.post(spec["path"], content=bodies[i % len(bodies)], headers=headers)
            ready.wait(timeout=60)
            go.wait(timeout=60)
            i = index
            while time.perf_counter() < stop_at[0] and ok + errors < max_requests:
                started = time.perf_counter_ns()
                try:
                    r = client.post(spec["path"], content=bodies[i % len(bodies)], headers=headers)
                    good = r.status_code == 200
                except httpx.HTTPError:
                    good = False
                latencies.append((time.perf_counter_ns() - started) / 1e6)
                ok, errors = (ok + 1, errors) if good else (ok, errors + 1)
                i += threads
        results[index] = (ok, errors, latencies)

    pool = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in pool:
        t.start()
    ready.wait(timeout=60)
    # After the warm-up: the client's CPU per request excludes imports and connecting.
    cpu_before = sum(os.times()[:2])
    started = time.perf_counter()
    stop_at[0] = started + duration
    go.set()
    for t in pool:
        t.join(timeout=duration + HTTP_TIMEOUT_S + 5)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for _, _, lat in results for x in lat)
    print(
        json.dumps(
            {
                "ok": sum(r[0] for r in results),
                "errors": sum(r[1] for r in results),
                "elapsed": elapsed,
                "client_cpu_s": sum(os.times()[:2]) - cpu_before,
                "clients_active": sum(1 for ok, errors, _ in results if ok + errors > 0),
                "p50": percentile(latencies, 50) if latencies else None,
                "p99": percentile(latencies, 99) if latencies else None,
            }
        )
    )
    return 0


@dataclass
class Load:
    name: str
    rps: float
    ok: int
    errors: int
    p50: float
    p99: float
    server_cpu_ms_per_req: float | None
    client_cpu_ms_per_req: float
    clients: int
    clients_active: int  # clients that got to send at all; less than `clients` = bad run


def run_load(
    name: str,
    url: str,
    path: str,
    bodies: list[str],
    headers: dict[str, str],
    threads: int,
    duration: float,
    server_cpu: Callable[[], float] | None,
) -> Load:
    """8 clients as threads of one separate process: in this process they would fight the
    in-process host for its GIL and make it look slower than it is; one process (not 8)
    keeps the client's share of the 2 cores small, and the same client hits both servers."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec_file:
        json.dump(
            {
                "url": url,
                "path": path,
                "bodies": bodies,
                "headers": headers,
                "threads": threads,
                "duration": duration,
                "max_requests": 1_000_000,
            },
            spec_file,
        )
    try:
        before = server_cpu() if server_cpu else None
        out = subprocess.run(
            [sys.executable, __file__, "--loadgen", spec_file.name],
            capture_output=True,
            text=True,
            timeout=duration + 180,
            check=True,
        )
        after = server_cpu() if server_cpu else None
    finally:
        os.unlink(spec_file.name)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    total = max(1, result["ok"] + result["errors"])
    return Load(
        name=name,
        rps=result["ok"] / result["elapsed"],
        ok=result["ok"],
        errors=result["errors"],
        p50=result["p50"],
        p99=result["p99"],
        server_cpu_ms_per_req=(after - before) * 1000 / total
        if before is not None and after is not None
        else None,
        client_cpu_ms_per_req=result["client_cpu_s"] * 1000 / total,
        clients=threads,
        clients_active=result["clients_active"],
    )


# --- mlflow --------------------------------------------------------------------------------
def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_mlflow_venv() -> str:
    """Create benchmarks/.venv-mlflow and install the pins, once; return mlflow's version.

    A marker file holding the requirement list makes the step cached: it reruns only when
    the pins change.
    """
    marker = MLFLOW_VENV / ".benchmark-requirements"
    wanted = "\n".join(MLFLOW_REQUIREMENTS)
    python = venv_python(MLFLOW_VENV)
    if not (python.exists() and marker.exists() and marker.read_text() == wanted):
        print(f"installing {' '.join(MLFLOW_REQUIREMENTS)} into {MLFLOW_VENV} ...", flush=True)
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        # The repository's .gitignore lists this venv; a '*' .gitignore inside it keeps it
        # out of git even where that line is missing (Python 3.13's venv does this itself).
        (MLFLOW_VENV / ".gitignore").write_text("*\n")
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *MLFLOW_REQUIREMENTS],
            check=True,
            timeout=PIP_TIMEOUT_S,
        )
        marker.write_text(wanted)
    out = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


# Runs inside the mlflow venv: load our skops bytes, save them as an mlflow sklearn model
# whose pyfunc answers predict_proba (what the platform returns with probabilities). mlflow
# 3.x saves sklearn models as skops by default and wants the types to trust at load time.
_MLFLOW_SAVE = """
import json, sys, warnings
import pandas as pd
import skops.io as sio
import mlflow.sklearn
data = open(sys.argv[1], "rb").read()
trusted = sio.get_untrusted_types(data=data)  # our own bytes, just trained
model = sio.loads(data, trusted=trusted)
# mlflow's hint that the inferred *output* (int64 labels of predict) cannot hold NaN: moot.
warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
example = pd.DataFrame(**json.load(open(sys.argv[2])))
mlflow.sklearn.save_model(
    model,
    sys.argv[3],
    input_example=example,
    pyfunc_predict_fn="predict_proba",
    skops_trusted_types=trusted,
)
"""


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        """SIGTERM the server's own process group (it was started in a new session)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)


def mlflow_env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # No telemetry calls (no internet here, and they would only add noise) and no tracking
    # directories written into the repository.
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_TRACKING_URI": (workdir / "mlruns").as_uri(),
            # As if the venv were activated: `--env-manager local` execs `uvicorn` by name.
            "VIRTUAL_ENV": str(MLFLOW_VENV),
            "PATH": f"{MLFLOW_VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    return env


def start_mlflow(skops_bytes: bytes, example: dict[str, Any], workdir: Path) -> MlflowServer:
    python = venv_python(MLFLOW_VENV)
    skops_path, example_path = workdir / "model.skops", workdir / "example.json"
    skops_path.write_bytes(skops_bytes)
    example_path.write_text(json.dumps(example))
    model_dir = workdir / "mlflow-model"
    env = mlflow_env(workdir)
    subprocess.run(
        [str(python), "-c", _MLFLOW_SAVE, str(skops_path), str(example_path), str(model_dir)],
        check=True,
        cwd=workdir,
        env=env,
        timeout=MLFLOW_SAVE_TIMEOUT_S,
    )
    port = free_port()
    log_path = workdir / "mlflow-serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(MLFLOW_VENV / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the whole server
        )
    server = MlflowServer(process, f"http://127.0.0.1:{port}", log_path)
    import httpx

    deadline = time.monotonic() + MLFLOW_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow serve exited:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/ping", timeout=2).status_code == 200:
                return server
        time.sleep(0.25)
    server.stop()
    raise RuntimeError(f"mlflow serve not ready in {MLFLOW_START_TIMEOUT_S:.0f} s")


# --- report --------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(
    meta: dict[str, str],
    latency: list[tuple[Stats | None, str]],
    baseline: Stats,
    bare: Stats,
    loads: list[Load | None],
    notes: list[str],
) -> str:
    lines = ["# Online prediction speed", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += [
        "",
        "## Warm single-record latency (ms)",
        "",
        "| path | n | p50 | p95 | p99 | mean | p50 / sklearn pipeline p50 (target <= 0.5)"
        " | p50 / bare forest p50 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for stats, label in latency:
        if stats is None:
            lines.append(f"| {label} | n/a | n/a | n/a | n/a | n/a | n/a | n/a |")
            continue
        lines.append(
            f"| {label} | {stats.n} | {fmt(stats.p50)} | {fmt(stats.p95)} | {fmt(stats.p99)}"
            f" | {fmt(stats.mean)} | {stats.p50 / baseline.p50:.3f} | {stats.p50 / bare.p50:.3f} |"
        )
    ours = next((x for x in loads if x is not None and x.name.startswith("ours")), None)
    theirs = next((x for x in loads if x is not None and x.name.startswith("mlflow")), None)
    lines += [
        "",
        "## Throughput, concurrent keep-alive clients, single-record requests",
        "",
        "| server | clients (active) | req/s | ok | errors | client p50 ms | client p99 ms"
        " | server CPU ms/req | client CPU ms/req | ours / mlflow (target >= 3) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load in loads:
        if load is None:
            lines.append("| mlflow models serve" + " | n/a" * 9 + " |")
            continue
        ratio = "n/a"
        if ours is not None and theirs is not None and theirs.rps > 0:
            ratio = f"{ours.rps / theirs.rps:.2f}" if load is ours else ""
        lines.append(
            f"| {load.name} | {load.clients} ({load.clients_active}) | {load.rps:.1f}"
            f" | {load.ok} | {load.errors} | {fmt(load.p50, 2)}"
            f" | {fmt(load.p99, 2)} | {fmt(load.server_cpu_ms_per_req, 2)}"
            f" | {load.client_cpu_ms_per_req:.2f} | {ratio} |"
        )
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def profile_handler(call: Callable[[int], None], n: int) -> str:
    """cProfile of ``n`` warm in-process handler calls: the top functions by cumulative
    time (which component costs what) and by own time (where to optimise)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(n):
        call(i)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)
    return out.getvalue()


# --- main ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--features", type=int, default=30)
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--iterations", type=int, default=2000, help="timed calls per latency path")
    p.add_argument("--warmup", type=int, default=200, help="untimed calls first")
    p.add_argument("--max-seconds", type=float, default=60.0, help="cap per latency path")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    p.add_argument("--skip-mlflow", action="store_true", help="no mlflow venv or server")
    p.add_argument("--profile", action="store_true", help="cProfile 500 in-process calls")
    p.add_argument("--quick", action="store_true", help="2k rows, 20 trees, short loops")
    p.add_argument("--loadgen", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.rows, args.trees, args.iterations, args.warmup = 2000, 20, 300, 50
        args.duration, args.max_seconds = 3.0, 15.0
    return args


@contextlib.contextmanager
def platform_under_test(onnx_bytes: bytes) -> Iterator[tuple[Any, str, str, int]]:
    """Azurite + LocalHost in this process with the model uploaded:
    (host, token, model, Azurite's pid)."""
    import httpx

    from devhost.azurite import start_azurite
    from shared.settings import get_settings

    azurite = start_azurite(in_memory=True)
    host = None
    try:
        password = secrets.token_urlsafe(18)
        os.environ.update(app_env(azurite.connection_string, password))
        # Settings are read when the app is first used: set the env before the import.
        get_settings.cache_clear()
        import function_app
        from devhost.server import LocalHost
        from devhost.settings import HostConfig

        config = HostConfig.load(ROOT / "host.json")
        # No timers and no queue pollers: they would only add background CPU to the 2 cores.
        host = LocalHost(function_app.app, port=0, config=config, timers=False, queues=False)
        host.start()
        with httpx.Client(base_url=host.url, timeout=120) as client:
            token = login(client, password)
            upload_onnx(client, token, MODEL, onnx_bytes)
        # Azurite's pid, to show how much storage work the warm path causes (private
        # attribute: devhost exposes no pid, and this is a measurement, not control).
        yield host, token, MODEL, azurite._process.pid  # type: ignore[union-attr]
    finally:
        if host is not None:
            host.stop()
        with contextlib.suppress(Exception):
            function_app.services.traffic_router.flush()
        # The A/B counter flusher is a daemon thread of this process; with Azurite gone its
        # retries would only print tracebacks through the mlflow part of the run.
        logging.getLogger("ml_platform.traffic").setLevel(logging.CRITICAL)
        azurite.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.loadgen:
        return loadgen_main(args)
    load_before = os.getloadavg()[0]

    import azure.functions as func
    import httpx
    import numpy as np
    import onnxruntime
    import sklearn
    from threadpoolctl import threadpool_limits

    from shared.ml.onnx_export import _session, onnx_inputs
    from shared.ml.pipeline import prepare_frame

    mlflow_version = None
    if not args.skip_mlflow:
        # First, so a broken install fails before minutes of training.
        mlflow_version = ensure_mlflow_venv()

    print(f"training: {args.rows} rows x {args.features} features, {args.trees} trees", flush=True)
    started = time.perf_counter()
    trained = train(args.rows, args.features, args.trees)
    train_s = time.perf_counter() - started
    pipeline, features = trained.estimator, trained.features
    names = [f["name"] for f in features]

    frame = make_frame(args.rows, args.features)
    sample = frame.sample(DISTINCT_ROWS, random_state=1)[names]
    records = [{k: float(v) for k, v in row.items()} for row in sample.to_dict("records")]
    frames = [prepare_frame(sample.iloc[[i]], features) for i in range(DISTINCT_ROWS)]
    arrays = [sample.iloc[[i]].to_numpy(dtype=np.float64) for i in range(DISTINCT_ROWS)]
    forest = pipeline.steps[-1][1]
    session = _session(trained.onnx_bytes)
    feeds = [onnx_inputs(features, frames[i]) for i in range(DISTINCT_ROWS)]
    predict_bodies = [json.dumps({"records": [r], "return_probabilities": True}) for r in records]
    mlflow_bodies = [
        json.dumps({"dataframe_split": {"columns": names, "data": [[r[n] for n in names]]}})
        for r in records
    ]

    notes: list[str] = []
    results: list[tuple[Stats | None, str]] = []
    loads: list[Load | None] = []
    timing = {"iterations": args.iterations, "warmup": args.warmup, "max_seconds": args.max_seconds}

    # sklearn runs single-threaded, as the platform trains and would serve it (n_jobs=1,
    # one BLAS/OpenMP thread), so no contender gets a second core the others do not.
    with threadpool_limits(limits=1):
        print("latency: sklearn ...", flush=True)
        baseline = time_calls(
            "sklearn", lambda i: pipeline.predict_proba(frames[i % DISTINCT_ROWS]), **timing
        )
        bare = time_calls(
            "forest", lambda i: forest.predict_proba(arrays[i % DISTINCT_ROWS]), **timing
        )
    results.append((baseline, "sklearn `pipeline.predict_proba(1-row DataFrame)` (baseline)"))
    results.append((bare, "sklearn bare forest `predict_proba(1x30 numpy)`"))
    notes.append(
        "The pipeline does not take numpy input: its ColumnTransformer selects columns by"
        " name, so the numpy row is measured on the fitted forest alone (no imputer)."
    )
    onnx_only = time_calls("onnx", lambda i: session.run(None, feeds[i % DISTINCT_ROWS]), **timing)
    results.append((onnx_only, "onnxruntime `session.run` alone (30 [1,1] inputs)"))

    with platform_under_test(trained.onnx_bytes) as (host, token, model, azurite_pid):
        azurite_cpu = tree_cpu_seconds(azurite_pid)
        handler = predict_function(host)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        body_bytes = [b.encode() for b in predict_bodies]

        def in_process(i: int) -> None:
            request = func.HttpRequest(
                "POST",
                f"{host.url}/predict/{model}",
                headers=headers,
                params={},
                route_params={"model": model},
                body=body_bytes[i % DISTINCT_ROWS],
            )
            response = handler(request)
            if response.status_code != 200:
                raise RuntimeError(
                    f"predict answered {response.status_code}: {response.get_body()}"
                )

        in_process(0)  # loads the model: download, SHA-256 check, onnxruntime session
        request = func.HttpRequest(
            "POST",
            f"{host.url}/predict/{model}",
            headers=headers,
            params={},
            route_params={"model": model},
            body=body_bytes[0],
        )
        check = json.loads(handler(request).get_body())
        expected = pipeline.predict_proba(frames[0])
        gap = float(np.max(np.abs(np.asarray(check["probabilities"]) - expected)))
        notes.append(f"Served probabilities match sklearn's on the first row (max gap {gap:.1e}).")

        print("latency: in-process handler ...", flush=True)
        handler_stats = time_calls("handler", in_process, **timing)
        results.append((handler_stats, "in-process `predict` handler (auth+validate+ONNX+JSON)"))

        print("latency: HTTP ...", flush=True)
        with httpx.Client(base_url=host.url, timeout=HTTP_TIMEOUT_S) as client:

            def over_http(i: int) -> None:
                r = client.post(
                    f"/predict/{model}", content=body_bytes[i % DISTINCT_ROWS], headers=headers
                )
                if r.status_code != 200:
                    raise RuntimeError(f"predict answered {r.status_code}: {r.text[:300]}")

            http_stats = time_calls("http", over_http, **timing)
        results.append((http_stats, "HTTP `POST /predict/{model}`, local host, keep-alive"))

        print(f"throughput: ours, {args.clients} clients x {args.duration:.0f} s ...", flush=True)
        loads.append(
            run_load(
                "ours: local host `/predict/{model}`",
                host.url,
                f"/predict/{model}",
                predict_bodies,
                headers,
                args.clients,
                args.duration,
                # The host runs in this process (all threads); the main thread only waits.
                lambda: sum(os.times()[:2]),
            )
        )
        notes.append(
            f"Azurite used {tree_cpu_seconds(azurite_pid) - azurite_cpu:.2f} s CPU during all"
            " our warm measurements: the warm path reads storage only on cache expiry"
            " (auth 10 s, alias 5 s)."
        )
        profile_text = profile_handler(in_process, 500) if args.profile else None

    mlflow_http: Stats | None = None
    if mlflow_version is None:
        loads.append(None)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
        server = None
        try:
            example = {"columns": names, "data": [[records[0][n] for n in names]]}
            print("mlflow: saving the model and starting `mlflow models serve` ...", flush=True)
            server = start_mlflow(trained.skops_bytes, example, workdir)
            mlflow_headers = {"Content-Type": "application/json"}
            with httpx.Client(base_url=server.url, timeout=HTTP_TIMEOUT_S) as client:
                first = client.post(
                    "/invocations", content=mlflow_bodies[0], headers=mlflow_headers
                )
                first.raise_for_status()
                notes.append(f"mlflow's answer to the first row: {first.text[:120]}")

                def mlflow_call(i: int) -> None:
                    r = client.post(
                        "/invocations",
                        content=mlflow_bodies[i % DISTINCT_ROWS],
                        headers=mlflow_headers,
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"mlflow answered {r.status_code}: {r.text[:300]}")

                print("latency: mlflow over HTTP ...", flush=True)
                mlflow_http = time_calls("mlflow", mlflow_call, **timing)
            print(f"throughput: mlflow, {args.clients} clients ...", flush=True)
            pid = server.process.pid
            loads.append(
                run_load(
                    "mlflow models serve `/invocations`",
                    server.url,
                    "/invocations",
                    mlflow_bodies,
                    mlflow_headers,
                    args.clients,
                    args.duration,
                    lambda: tree_cpu_seconds(pid),
                )
            )
        finally:
            if server is not None:
                server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    results.append((mlflow_http, "HTTP `POST /invocations`, mlflow models serve, keep-alive"))

    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}",
        "model": f"RandomForestClassifier({args.trees} trees, n_jobs=1) on {args.rows} x"
        f" {args.features} (trained in {train_s:.1f} s by train_model; ONNX"
        f" {len(trained.onnx_bytes) / 1e6:.1f} MB, skops {len(trained.skops_bytes) / 1e6:.1f} MB)",
        "versions": f"scikit-learn {sklearn.__version__}, onnxruntime {onnxruntime.__version__},"
        f" mlflow {mlflow_version or 'n/a (--skip-mlflow)'}",
        "latency loop": f"{args.warmup} warm-up calls discarded, then up to {args.iterations}"
        f" calls or {args.max_seconds:.0f} s; records cycle through {DISTINCT_ROWS} rows",
        "throughput": f"{args.clients} client threads in one separate process, each with its"
        f" own keep-alive httpx.Client, {args.duration:.0f} s per server",
        # Other processes on the machine skew every number here: say how busy it was.
        "load average (1 min)": f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
        f" ({os.cpu_count()} cores)",
    }
    notes += [
        "Server, clients and Azurite share the machine's cores, so throughput is what one"
        " 2-core box does with both ends on it; the client's own CPU cost is in its column.",
        "Our host is devhost's ThreadingHTTPServer in one process (one GIL); mlflow serve"
        " runs with its default worker count. Both answer with probabilities.",
    ]
    report = render(meta, results, baseline, bare, loads, notes)
    by_label = {label: stats for stats, label in results}
    http = by_label.get("HTTP `POST /predict/{model}`, local host, keep-alive")
    mlflow_stats = by_label.get("HTTP `POST /invocations`, mlflow models serve, keep-alive")
    if http is not None:
        record(
            "online",
            "single-record p50 over HTTP",
            http.p50,
            baseline.p50,
            "sklearn pipeline in process",
            "ms",
            "<= 0.5x sklearn",
        )
        if mlflow_stats is not None:
            record(
                "online",
                "single-record p50 over HTTP",
                http.p50,
                mlflow_stats.p50,
                "mlflow models serve",
                "ms",
            )
    ours_load, theirs_load = [*loads, None, None][:2]
    if ours_load is not None and theirs_load is not None:
        record(
            "online",
            f"{args.clients}-client throughput",
            ours_load.rps,
            theirs_load.rps,
            "mlflow models serve",
            "req/s",
            lower_is_better=False,
        )
    if profile_text:
        report += (
            "\n## cProfile of 500 warm in-process handler calls (cumulative, then own time)"
            "\n\nTimes under the profiler are inflated several-fold; read them as shares."
            "\n\n```\n" + profile_text.strip() + "\n```\n"
        )
    print()
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
