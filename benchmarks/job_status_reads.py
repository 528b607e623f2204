"""Latency of ``GET /train/jobs/{id}`` while a job runs (issue 10: p50 under 20 ms).

    .venv/bin/python benchmarks/job_status_reads.py [--units 1000] [--reads 300]

Starts an in-memory Azurite and the local host in process, records a running job with
``--units`` unit rows (the read must not depend on them: progress lives on the job row),
then times ``--reads`` sequential status reads through the real HTTP path. Prints a table.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--reads", type=int, default=300)
    args = parser.parse_args()
    import httpx

    from devhost.azurite import start_azurite

    azurite = start_azurite(in_memory=True)
    try:
        os.environ.update(
            {
                "STORAGE_CONNECTION_STRING": azurite.connection_string,
                "AzureWebJobsStorage": azurite.connection_string,
                "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
                "BOOTSTRAP_ADMIN_USERNAME": "admin",
                "BOOTSTRAP_ADMIN_PASSWORD": (password := secrets.token_urlsafe(24)),
                "LOCAL_SETTINGS_PATH": "/nonexistent/local.settings.json",
                "LOG_LEVEL": "WARNING",
                "TRAINING_SCHEDULE": "0 0 2 1 * *",
            }
        )
        import function_app
        from devhost.server import LocalHost
        from devhost.settings import HostConfig
        from shared.tables import iso, utcnow

        host = LocalHost(function_app.app, port=0, config=HostConfig.load(ROOT / "host.json"))
        host.start()
        try:
            store = function_app.services.job_store
            job = store.create("http", ["rooms"], {}, "admin")
            units = [
                {
                    "unit_id": f"rooms~{i:06d}",
                    "spec": "rooms",
                    "partition": f"r{i}",
                    "status": "queued",
                    "n_rows": 1000,
                }
                for i in range(args.units)
            ]
            store.add_units(job.job_id, units)
            store.update(
                job.job_id,
                status="running",
                started_at=iso(utcnow()),
                total_units=args.units,
                done_units=args.units // 3,
                rows_total=args.units * 1000,
                rows_done=args.units * 333,
            )
            with httpx.Client(base_url=host.url, timeout=30) as client:
                r = client.post("/auth/jwt/login", data={"username": "admin", "password": password})
                headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
                times, beats = [], []
                for _ in range(args.reads):
                    t0 = time.perf_counter()
                    r = client.get(f"/train/jobs/{job.job_id}", headers=headers)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 202, r.text
                    # The same host's cheapest route, for the machine's share of the time.
                    t0 = time.perf_counter()
                    client.get("/heartbeat")
                    beats.append((time.perf_counter() - t0) * 1000)
        finally:
            host.stop()
    finally:
        azurite.stop()
    print("| route (local host + Azurite) | unit rows | reads | p50 ms | p95 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in (("GET /train/jobs/{id}, running", times), ("GET /heartbeat", beats)):
        values.sort()
        p95 = values[int(0.95 * (len(values) - 1))]
        print(
            f"| {name} | {args.units:,} | {len(values)} "
            f"| {statistics.median(values):.1f} | {p95:.1f} |"
        )
    print(f"\nload avg {os.getloadavg()[0]:.1f}; command: `{' '.join(sys.argv)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
