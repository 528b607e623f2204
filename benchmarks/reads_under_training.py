"""Heartbeat and job-status latency while a partitioned training job runs, with queue work
in the HTTP process (``--role single``, the old devhost) or in a worker process of its own
(``--role all``, the default now, as separate instances in Azure).

    .venv/bin/python benchmarks/reads_under_training.py            # both roles
    .venv/bin/python benchmarks/reads_under_training.py --quick    # fewer partitions

Prints one markdown table; writes it to benchmarks/results/reads_under_training.md.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rooms(partitions: int, rows: int) -> bytes:
    rng = np.random.default_rng(1)
    frames = []
    for i in range(partitions):
        hour = rng.integers(0, 24, rows)
        occupancy = rng.poisson(2 + 3 * ((hour >= 9) & (hour < 17)))
        frames.append(
            pd.DataFrame(
                {
                    "room": f"room-{i:03d}",
                    "hour": hour,
                    "co2": 420 + 45 * occupancy + rng.normal(0, 60, rows),
                    "busy": np.where(occupancy > 3, "yes", "no"),
                }
            )
        )
    buffer = io.StringIO()
    pd.concat(frames).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _quantiles(values: list[float]) -> tuple[float, float]:
    ms = sorted(v * 1000 for v in values)
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return q[49], q[94]


def measure(role: str, partitions: int, rows: int) -> dict[str, float]:
    from devhost.azurite import start_azurite

    azurite = start_azurite(in_memory=True)
    port = _free_port()
    password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "LOCAL_SETTINGS_PATH": str(Path(tempfile.gettempdir()) / "no-local-settings.json"),
        "BOOTSTRAP_ADMIN_USERNAME": "admin",
        "BOOTSTRAP_ADMIN_PASSWORD": password,
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "WARNING",
        "TRAINING_SCHEDULE": "0 0 2 1 * *",
    }
    argv = [sys.executable, "-m", "devhost", "--port", str(port), "--no-timers"]
    argv += ["--role", role, "--settings", env["LOCAL_SETTINGS_PATH"]]
    host = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/heartbeat").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            token = client.post(
                "/auth/jwt/login", data={"username": "admin", "password": password}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            client.put(
                "/datasets/rooms",
                headers={**headers, "Content-Type": "text/csv"},
                content=_rooms(partitions, rows),
            ).raise_for_status()
            spec = {
                "dataset": "rooms",
                "target": "busy",
                "algorithm": "random_forest",
                "params": {"n_estimators": 50},
                "partition_by": "room",
                "min_rows": 10,
                "enabled": False,
            }
            client.put("/train/specs/rooms", headers=headers, json=spec).raise_for_status()
            location = client.post("/train", headers=headers, json={"specs": ["rooms"]}).headers[
                "location"
            ]
            heartbeat, status = [], []
            started = time.monotonic()
            while True:
                t = time.perf_counter()
                client.get("/heartbeat").raise_for_status()
                heartbeat.append(time.perf_counter() - t)
                t = time.perf_counter()
                job = client.get(location, headers=headers)
                status.append(time.perf_counter() - t)
                if job.status_code == 200:
                    break
                time.sleep(0.2)
            wall = time.monotonic() - started
    finally:
        host.terminate()
        host.wait(30)
        azurite.stop()
    hb50, hb95 = _quantiles(heartbeat)
    st50, st95 = _quantiles(status)
    return {"hb50": hb50, "hb95": hb95, "st50": st50, "st95": st95, "wall": wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    partitions, rows = (8, 300) if args.quick else (20, 1000)
    lines = [
        f"partitioned training, {partitions} rooms x {rows} rows, random_forest (50 trees),"
        " while polling every 0.2 s:",
        "",
        "| queue work runs | heartbeat p50 ms | heartbeat p95 ms | status p50 ms |"
        " status p95 ms | job wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role, label in (("single", "in the HTTP process (before)"), ("all", "in a worker process")):
        r = measure(role, partitions, rows)
        lines.append(
            f"| {label} | {r['hb50']:.1f} | {r['hb95']:.1f} | {r['st50']:.1f} | {r['st95']:.1f}"
            f" | {r['wall']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "reads_under_training.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
