"""Time partitioned training (one sub-model per room) with 1, 2, ... queue workers.

Usage (from the repository root):

    .venv/bin/python benchmarks/train_partitions.py                 # 200 rooms x 2,000 rows
    .venv/bin/python benchmarks/train_partitions.py --quick         # 20 rooms x 500 rows
    .venv/bin/python benchmarks/train_partitions.py --workers 1 2 --algorithm random_forest

What it does: starts its own in-memory Azurite on free ports; for each worker count W it
starts W separate ``python -m devhost --no-timers`` processes (the first one, the "front",
also serves the HTTP calls), uploads a generated room-usage dataset once (PUT /datasets),
creates a fresh partitioned spec, POSTs /train and polls the job until it is finished.
devhost has no queue-only mode, so every process polls the ``training`` queue: W processes
are W queue workers. Each process gets a host.json copy with ``batchSize`` 1, so a worker
trains one unit at a time and "workers" means parallel training units.

Prints a markdown table (and writes it to benchmarks/results/train_partitions.md) plus a
phase breakdown read from the job and its unit rows in Table Storage.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "train_partitions.md"
ADMIN = "admin"
# Every wait below is bounded by one of these.
STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
DRAIN_TIMEOUT_S = 60.0
HTTP_TIMEOUT_S = 300.0
_LISTENING = re.compile(r"Listening on (http://\S+)")
# Every host ever started, so main() can stop leftovers even if a run's own cleanup was cut
# short by a second Ctrl-C.
_STARTED: list[HostProcess] = []


# --- data ----------------------------------------------------------------------------------
def room_usage_csv(rooms: int, rows: int, labelled: bool, seed: int = 7) -> bytes:
    """``rooms`` x ``rows`` rows of room, hour, occupancy, co2, temperature (+ busy label)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n = rooms * rows
    room_index = np.repeat(np.arange(rooms), rows)
    hour = rng.integers(0, 24, n)
    # Rooms differ in typical use, so each per-room model sees its own distribution.
    occupancy = rng.poisson(2 + room_index % 5 + 3 * ((hour >= 9) & (hour < 17)))
    frame = pd.DataFrame(
        {
            "room": np.char.add("room-", np.char.zfill(room_index.astype(str), 4)),
            "hour": hour,
            "occupancy": occupancy,
            "co2": np.round(420 + 45 * occupancy + rng.normal(0, 40, n), 1),
            "temperature": np.round(20 + 0.25 * occupancy + rng.normal(0, 0.8, n), 2),
        }
    )
    if labelled:
        # Noisy, so the classifier has real work to do and both classes occur in every room.
        noisy = occupancy + rng.normal(0, 1.5, n)
        frame["busy"] = np.where(noisy > 4 + room_index % 5, "yes", "no")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def spec_body(dataset: str, algorithm: str, n_estimators: int) -> dict[str, Any]:
    common = {
        "dataset": dataset,
        "algorithm": algorithm,
        "params": {"n_estimators": n_estimators},
        "partition_by": "room",
        "min_rows": 50,
        # Disabled: only our explicit POST /train runs it, never a scheduled job.
        "enabled": False,
    }
    if algorithm == "isolation_forest":
        return {**common, "target": None}
    return {**common, "target": "busy"}


# --- processes -----------------------------------------------------------------------------
@dataclass
class HostProcess:
    """One ``python -m devhost`` process, its log file and (once ready) its URL."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    url: str | None = None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def host_env(connection_string: str, workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmark's hosts: this Azurite, fresh secrets, the admin
    ``ADMIN`` with a random password (``BOOTSTRAP_ADMIN_PASSWORD``), no local settings."""
    return {
        **{k: v for k, v in os.environ.items() if k != "PORT"},
        "STORAGE_CONNECTION_STRING": connection_string,
        "AzureWebJobsStorage": connection_string,
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "BOOTSTRAP_ADMIN_USERNAME": ADMIN,
        "BOOTSTRAP_ADMIN_PASSWORD": secrets.token_urlsafe(24),
        "LOCAL_SETTINGS_PATH": str(workdir / "no-local-settings.json"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def start_host(name: str, workdir: Path, env: dict[str, str], host_json: Path) -> HostProcess:
    log_path = workdir / f"{name}.log"
    # A file, not a pipe: nobody reads the pipe during a long run, and a full pipe would
    # block the process.
    log_file = log_path.open("wb")
    command = [
        sys.executable,
        "-m",
        "devhost",
        "--port",
        "0",  # the OS picks a free port; we read it back from the "Listening on" line
        "--no-timers",
        "--host-json",
        str(host_json),
        "--settings",
        str(workdir / "no-local-settings.json"),
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        # Own session: Ctrl-C reaches only this script, which then stops the hosts in order.
        start_new_session=True,
    )
    host = HostProcess(name, process, log_path, log_file)
    _STARTED.append(host)
    return host


def wait_ready(hosts: list[HostProcess]) -> None:
    """Wait until every host printed its URL and answers /heartbeat."""
    import httpx

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    for host in hosts:
        while host.url is None:
            if host.process.poll() is not None:
                raise RuntimeError(f"{host.name} exited early:\n{host.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} did not start:\n{host.log_tail()}")
            found = _LISTENING.search(host.log_path.read_text(errors="replace"))
            if found:
                host.url = found.group(1)
            else:
                time.sleep(0.1)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{host.url}/heartbeat", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} does not answer:\n{host.log_tail()}")
            time.sleep(0.1)


def log_errors(hosts: list[HostProcess]) -> tuple[int, list[str]]:
    """ERROR lines in the hosts' logs and the distinct exceptions they ended with.

    A job can end "failed" while every unit succeeded (the fan-in failed); the reason is
    only in the worker's log, so the report quotes it.
    """
    count, exceptions = 0, []
    for host in hosts:
        in_traceback = False
        with contextlib.suppress(OSError):
            for line in host.log_path.read_text(errors="replace").splitlines():
                if " ERROR " in line:
                    count += 1
                if line.startswith("Traceback"):
                    in_traceback = True
                elif in_traceback and line and not line.startswith(" "):
                    in_traceback = False
                    brief = f"{host.name}: {line[:160]}"
                    if brief not in exceptions:
                        exceptions.append(brief)
    return count, exceptions


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a live process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime and stime are fields 14 and 15 of stat; fields[0] here is field 3 (state).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop_hosts(hosts: list[HostProcess]) -> None:
    """SIGTERM all (devhost stops cleanly on it), wait bounded, then SIGKILL the rest."""
    for host in hosts:
        if host.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                host.process.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for host in hosts:
        try:
            host.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                host.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                host.process.wait(5)
        if not host.log_file.closed:
            host.log_file.close()


# --- one run ---------------------------------------------------------------------------------
@dataclass
class RunResult:
    workers: int
    partitions: int
    rows: int
    status: str = "not run"
    wall_s: float | None = None
    post_s: float | None = None
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    trained_rows: int = 0
    # Phases, from the job's and the units' timestamps (written by the hosts).
    plan_s: float | None = None
    dispatch_s: float | None = None
    units_span_s: float | None = None
    unit_mean_s: float | None = None
    unit_busy_s: float | None = None
    fan_in_s: float | None = None
    drain_s: float | None = None
    errors: list[str] = field(default_factory=list)
    # CPU the hosts actually got vs. the units' busy time: far below means other processes
    # on the machine took the cores and the run is not representative.
    host_cpu_s: float | None = None
    load_1m: float | None = None
    log_error_lines: int = 0
    log_exceptions: list[str] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.succeeded + self.failed

    def units_per_s(self) -> float | None:
        return self.units / self.wall_s if self.wall_s else None

    def rows_per_s(self) -> float | None:
        return self.trained_rows / self.wall_s if self.wall_s else None


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return (later - earlier).total_seconds() if later and earlier else None


def login(client: Any, password: str) -> dict[str, str]:
    r = client.post("/auth/jwt/login", data={"username": ADMIN, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def poll_job(
    client: Any, headers: dict[str, str], location: str, timeout: float, interval: float
) -> dict[str, Any] | None:
    """The finished job, or None on timeout. A poll that fails (host busy) is retried."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = client.get(location, headers=headers)
        except httpx.TransportError:
            r = None
        if r is not None and r.status_code == 200:
            return r.json()
        if r is not None and r.status_code != 202:
            raise RuntimeError(f"GET {location}: {r.status_code} {r.text[:300]}")
        time.sleep(interval)
    return None


def unit_timings(connection_string: str, job_id: str) -> list[tuple[datetime, datetime]]:
    """(started_at, finished_at) of every trained unit; the HTTP job view omits them."""
    from azure.data.tables import TableClient

    with TableClient.from_connection_string(connection_string, "JobUnits") as table:
        rows = table.query_entities("PartitionKey eq @j", parameters={"j": job_id})
        spans = []
        for row in rows:
            start, end = _ts(row.get("started_at")), _ts(row.get("finished_at"))
            if start and end:
                spans.append((start, end))
        return spans


def wait_queue_drained(connection_string: str, timeout: float) -> float | None:
    """Seconds until the training queue is empty (the finalize message's cleanup done)."""
    from azure.storage.queue import QueueClient

    started = time.monotonic()
    with QueueClient.from_connection_string(connection_string, "training") as queue:
        while time.monotonic() - started < timeout:
            # The approximate count includes invisible (in-flight) messages.
            if queue.get_queue_properties().approximate_message_count == 0:
                return time.monotonic() - started
            time.sleep(0.2)
    return None


def run_once(
    workers: int,
    args: argparse.Namespace,
    env: dict[str, str],
    workdir: Path,
    host_json: Path,
    dataset: dict[str, Any],
    connection_string: str,
) -> RunResult:
    import httpx

    result = RunResult(workers, args.rooms, args.rooms * args.rows)
    hosts: list[HostProcess] = []
    try:
        # Fresh processes per run: every run pays the same cold start (ML stack import).
        for index in range(workers):
            name = f"w{workers}-{'front' if index == 0 else f'worker{index}'}"
            hosts.append(start_host(name, workdir, env, host_json))
        wait_ready(hosts)
        front = hosts[0].url
        with httpx.Client(base_url=front, timeout=HTTP_TIMEOUT_S) as client:
            headers = login(client, env["BOOTSTRAP_ADMIN_PASSWORD"])
            if not dataset.get("uploaded"):
                started = time.perf_counter()
                r = client.put(
                    f"/datasets/{dataset['name']}",
                    headers={**headers, "Content-Type": "text/csv"},
                    content=dataset["csv"],
                )
                r.raise_for_status()
                dataset["uploaded"] = True
                dataset["upload_s"] = time.perf_counter() - started
            # A fresh spec per run: its own model, no champion to compare, no shared state.
            spec = f"bench-{workers}w-{secrets.token_hex(3)}"
            body = spec_body(dataset["name"], args.algorithm, args.n_estimators)
            r = client.put(f"/train/specs/{spec}", headers=headers, json=body)
            if r.status_code not in (200, 201):
                raise RuntimeError(f"PUT spec: {r.status_code} {r.text[:300]}")

            started = time.perf_counter()
            r = client.post("/train", headers=headers, json={"specs": [spec]})
            result.post_s = time.perf_counter() - started
            if r.status_code != 202:
                raise RuntimeError(f"POST /train: {r.status_code} {r.text[:300]}")
            job = poll_job(client, headers, r.headers["location"], args.timeout, args.poll)
            if job is None:
                result.status = "timeout"
                return result
            result.wall_s = time.perf_counter() - started

        result.status = job["status"]
        for unit in job["results"]:
            if unit["status"] == "succeeded":
                result.succeeded += 1
                result.trained_rows += unit.get("n_rows") or 0
            elif unit["status"] == "failed":
                result.failed += 1
                result.errors.append(str(unit.get("error"))[:200])
            elif unit["status"] == "skipped":
                result.skipped += 1
        created, begun, finished = (
            _ts(job.get("created_at")),
            _ts(job.get("started_at")),
            _ts(job.get("finished_at")),
        )
        # started_at is written at the end of planning (after slicing + staging uploads).
        result.plan_s = _seconds(begun, created)
        spans = unit_timings(connection_string, job["job_id"])
        if spans:
            first = min(s for s, _ in spans)
            last = max(e for _, e in spans)
            busy = sum((e - s).total_seconds() for s, e in spans)
            result.dispatch_s = _seconds(first, begun)
            result.units_span_s = _seconds(last, first)
            result.unit_busy_s = busy
            result.unit_mean_s = busy / len(spans)
            # Includes the finalize message's queue latency and the registration itself.
            result.fan_in_s = _seconds(finished, last)
        result.drain_s = wait_queue_drained(connection_string, DRAIN_TIMEOUT_S)
        return result
    finally:
        cpu = [cpu_seconds(h.process.pid) for h in hosts if h.process.poll() is None]
        result.host_cpu_s = sum(c for c in cpu if c is not None) if cpu else None
        with contextlib.suppress(OSError, AttributeError):
            result.load_1m = os.getloadavg()[0]
        stop_hosts(hosts)
        result.log_error_lines, result.log_exceptions = log_errors(hosts)


# --- report --------------------------------------------------------------------------------
def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(
    results: list[RunResult], args: argparse.Namespace, dataset: dict[str, Any], command: str
) -> str:
    base = next((r for r in results if r.workers == 1 and r.wall_s), None)
    lines = [
        f"## Partitioned training: {args.rooms} rooms x {args.rows:,} rows, "
        f"{args.algorithm} (n_estimators={args.n_estimators})",
        "",
        "| workers | partitions | rows | wall s | units/s | rows/s | speed-up vs 1 worker "
        "| succeeded/failed/skipped | job status |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | --- |",
    ]
    for r in results:
        speedup = base.wall_s / r.wall_s if base and base.wall_s and r.wall_s else None
        lines.append(
            f"| {r.workers} | {r.partitions} | {r.rows:,} | {_f(r.wall_s)} "
            f"| {_f(r.units_per_s(), 2)} | {_f(r.rows_per_s(), 0)} | {_f(speedup, 2)} "
            f"| {r.succeeded}/{r.failed}/{r.skipped} | {r.status} |"
        )
    lines += [
        "",
        "Phases (from job and unit timestamps; s):",
        "",
        "| workers | POST | queue+plan | dispatch | units span | units-span speed-up "
        "| unit mean | unit busy sum | busy/span | fan-in (last unit -> finished) "
        "| cleanup after finish | host CPU s | load avg 1m at end | ERROR lines in host logs |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for r in results:
        parallel = r.unit_busy_s / r.units_span_s if r.unit_busy_s and r.units_span_s else None
        span_speedup = (
            base.units_span_s / r.units_span_s
            if base and base.units_span_s and r.units_span_s
            else None
        )
        lines.append(
            f"| {r.workers} | {_f(r.post_s, 2)} | {_f(r.plan_s)} | {_f(r.dispatch_s)} "
            f"| {_f(r.units_span_s)} | {_f(span_speedup, 2)} | {_f(r.unit_mean_s, 2)} "
            f"| {_f(r.unit_busy_s)} | {_f(parallel, 2)} | {_f(r.fan_in_s)} | {_f(r.drain_s)} "
            f"| {_f(r.host_cpu_s)} | {_f(r.load_1m, 2)} | {r.log_error_lines} |"
        )
    errors = [e for r in results for e in r.errors[:3]]
    if errors:
        lines += ["", "First unit errors:", *[f"- {e}" for e in errors]]
    exceptions = [f"{r.workers} worker(s): {e}" for r in results for e in r.log_exceptions[:3]]
    if exceptions:
        lines += ["", "Exceptions in host logs:", *[f"- `{e}`" for e in exceptions]]
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    lines += [
        "",
        f"Machine: nproc={affinity or os.cpu_count()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}; dataset CSV "
        f"{len(dataset['csv']) / 1e6:.1f} MB, upload {_f(dataset.get('upload_s'), 1)} s; "
        f"host.json queues.batchSize={args.batch_size} per process; poll every {args.poll} s; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `{command}`",
        "",
    ]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rooms", type=int, default=200, help="partitions (default 200)")
    parser.add_argument("--rows", type=int, default=2000, help="rows per room (default 2000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="default: 1 2")
    parser.add_argument(
        "--algorithm", choices=("isolation_forest", "random_forest"), default="isolation_forest"
    )
    parser.add_argument("--n-estimators", type=int, default=50)
    parser.add_argument(
        "--timeout", type=float, default=1800, help="per run, seconds (default 1800)"
    )
    parser.add_argument("--poll", type=float, default=1.0, help="job poll interval, seconds")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="host.json queues.batchSize per process"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 rooms x 500 rows")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.rooms, args.rows = 20, 500
    if args.rooms < 1 or args.rows < 1 or any(w < 1 for w in args.workers):
        parser.error("--rooms, --rows and --workers must be positive")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM behaves like Ctrl-C, so the finally blocks stop the hosts and Azurite.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    sys.path.insert(0, str(ROOT))  # devhost is imported from the repository, not installed
    from devhost.azurite import start_azurite

    signal.signal(signal.SIGTERM, _interrupt)
    labelled = args.algorithm != "isolation_forest"
    started = time.perf_counter()
    csv = room_usage_csv(args.rooms, args.rows, labelled)
    print(
        f"dataset: {args.rooms} rooms x {args.rows} rows, {len(csv) / 1e6:.1f} MB "
        f"(generated in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    dataset: dict[str, Any] = {
        "name": f"rooms-{args.rooms}x{args.rows}-{secrets.token_hex(3)}",
        "csv": csv,
    }
    results: list[RunResult] = []
    azurite = None
    workdir = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        azurite = start_azurite(in_memory=True)
        host_config = json.loads((ROOT / "host.json").read_text(encoding="utf-8-sig"))
        host_config.setdefault("extensions", {}).setdefault("queues", {})["batchSize"] = (
            args.batch_size
        )
        host_json = workdir / "host.json"
        host_json.write_text(json.dumps(host_config, indent=2))
        env = host_env(azurite.connection_string, workdir, TRAINING_SCHEDULE="0 0 2 1 * *")
        print(f"azurite ports {azurite.ports}; host logs in {workdir}", flush=True)
        for workers in args.workers:
            print(f"run: {workers} worker(s)...", flush=True)
            result = run_once(
                workers, args, env, workdir, host_json, dataset, azurite.connection_string
            )
            results.append(result)
            print(
                f"  {result.status}: wall {_f(result.wall_s)} s, "
                f"{result.succeeded}/{result.failed}/{result.skipped} "
                f"succeeded/failed/skipped",
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted; stopping hosts and Azurite", file=sys.stderr, flush=True)
        return 130
    finally:
        stop_hosts([h for h in _STARTED if h.process.returncode is None])
        if azurite is not None:
            azurite.stop()
        if results:
            text = report(results, args, dataset, command)
            print("\n" + text)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(text)
            print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
