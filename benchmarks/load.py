"""Load: N async clients for S seconds mixing login, list, predict and upload (loopback).

Each client signs in, then loops until the time is up, choosing per request: login 15 %,
``GET /models`` 30 %, ``POST /predict/{model}`` 45 %, model upload 10 % (to one of a few
shared model names, so concurrent uploads race for version numbers). Every request sends
its own ``X-Request-ID``. Afterwards it checks that nothing was lost: every accepted
upload is listed under its version, versions per model are exactly 1..n, and every
accepted mutating request has its audit row. It prints p50/p95/p99 per route.

    .venv/bin/python benchmarks/load.py                  # 50 clients, 60 s, own platform
    .venv/bin/python benchmarks/load.py --clients 100 --seconds 600

The CI variant is ``tests/load/test_load.py`` (``LOAD_SECONDS``/``LOAD_CLIENTS``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FEATURES = [f"f{i}" for i in range(4)]
UPLOAD_MODELS = 4
MIX = (("login", 15), ("list", 30), ("predict", 45), ("upload", 10))
# Mutating routes that are audited (online predictions are counted in metrics instead).
AUDITED = frozenset({"login", "upload"})


def onnx_model() -> bytes:
    """A small ONNX logistic regression with one [n, 1] float input per feature."""
    import numpy as np
    import pandas as pd
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(200, 4)).astype(np.float32), columns=FEATURES)
    y = (frame.f0 + frame.f1 > 0).astype(int)
    pipe = make_pipeline(
        ColumnTransformer([("n", "passthrough", FEATURES)]), LogisticRegression()
    ).fit(frame, y)
    onx = to_onnx(
        pipe,
        initial_types=[(n, FloatTensorType([None, 1])) for n in FEATURES],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
    )
    return onx.SerializeToString()


@dataclass
class LoadResult:
    seconds: float
    clients: int
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    uploads: dict[str, list[int]] = field(default_factory=dict)  # model -> versions accepted
    audited: list[str] = field(default_factory=list)  # request ids that must have a row
    prefix: str = ""

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def table(self) -> str:
        lines = [
            f"{self.clients} clients, {self.seconds:.0f} s, {self.requests} requests,"
            f" {len(self.errors)} errors ({self.requests / self.seconds:.0f} req/s)",
            "",
            "| route | requests | p50 ms | p95 ms | p99 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for route, values in sorted(self.latencies.items()):
            ms = sorted(v * 1000 for v in values)
            q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
            lines.append(
                f"| {route} | {len(ms)} | {q[49]:.0f} | {q[94]:.0f} | {q[98]:.0f} | {ms[-1]:.0f} |"
            )
        return "\n".join(lines)


async def _client(
    http: httpx.AsyncClient,
    result: LoadResult,
    username: str,
    password: str,
    model: bytes,
    predict_model: str,
    until: float,
    rng: random.Random,
) -> None:
    form = {"username": username, "password": password}

    async def call(route: str, method: str, url: str, **kw: Any) -> httpx.Response | None:
        request_id = uuid.uuid4().hex
        headers = {**kw.pop("headers", {}), "X-Request-ID": request_id}
        started = time.perf_counter()
        try:
            response = await http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            result.errors.append(f"{route}: {type(exc).__name__} {exc}")
            return None
        result.latencies.setdefault(route, []).append(time.perf_counter() - started)
        if response.status_code >= 400:
            result.errors.append(f"{route}: {response.status_code} {response.text[:200]}")
            return None
        if route in AUDITED:
            result.audited.append(request_id)
        return response

    login = await call("login", "POST", "/auth/jwt/login", data=form)
    if login is None:
        return
    auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
    names, weights = zip(*MIX, strict=True)
    while time.monotonic() < until:
        action = rng.choices(names, weights)[0]
        if action == "login":
            await call("login", "POST", "/auth/jwt/login", data=form)
        elif action == "list":
            await call("list", "GET", "/models", headers=auth, params={"limit": 50})
        elif action == "predict":
            record = {f: rng.uniform(-2, 2) for f in FEATURES}
            await call(
                "predict", "POST", f"/predict/{predict_model}", headers=auth,
                json={"records": [record]},
            )  # fmt: skip
        else:
            name = f"{result.prefix}-up{rng.randrange(UPLOAD_MODELS)}"
            files = {"model_file": ("model.onnx", model, "application/octet-stream")}
            r = await call("upload", "POST", f"/models/{name}/versions", headers=auth, files=files)
            if r is not None:
                result.uploads.setdefault(name, []).append(int(r.json()["version"]))


async def _run(
    url: str, username: str, password: str, clients: int, seconds: float, seed: int
) -> LoadResult:
    model = onnx_model()
    result = LoadResult(seconds=seconds, clients=clients, prefix=f"load{secrets.token_hex(2)}")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        token = (
            await http.post("/auth/jwt/login", data={"username": username, "password": password})
        ).json()["access_token"]
        predict_model = f"{result.prefix}-serve"
        r = await http.post(
            f"/models/{predict_model}/versions",
            headers={"Authorization": f"Bearer {token}"},
            files={"model_file": ("model.onnx", model, "application/octet-stream")},
        )
        r.raise_for_status()
        until = time.monotonic() + seconds
        rngs = [random.Random(seed + i) for i in range(clients)]
        await asyncio.gather(
            *(
                _client(http, result, username, password, model, predict_model, until, rngs[i])
                for i in range(clients)
            )
        )
    return result


def run_load(
    url: str, username: str, password: str, clients: int = 50, seconds: float = 60, seed: int = 1
) -> LoadResult:
    return asyncio.run(_run(url, username, password, clients, seconds, seed))


def lost_writes(result: LoadResult, url: str, username: str, password: str) -> list[str]:
    """What an accepted write left out: versions not listed, skipped or reused numbers,
    accepted mutating requests without an audit row (read from the Audit table)."""
    from shared.http import current_services

    problems = []
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post(
            "/auth/jwt/login", data={"username": username, "password": password}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        for name, accepted in result.uploads.items():
            listed = client.get(f"/models/{name}", headers=headers).json()["versions"]
            versions = sorted(v["version"] for v in listed)
            if sorted(accepted) != versions:
                problems.append(f"{name}: accepted {sorted(accepted)}, listed {versions}")
            if versions != list(range(1, len(versions) + 1)):
                problems.append(f"{name}: versions skipped or reused: {versions}")
    table = current_services().storage.table("Audit")
    since = (time.time() - result.seconds - 600) * 1000
    found = set()
    for e in table.query_entities("PartitionKey ge @lo", parameters={"lo": ""}):
        row_ms = 10**13 - int(e["RowKey"].split("-", 1)[0])
        if row_ms >= since:
            found.add(e["request_id"])
    missing = [r for r in result.audited if r not in found]
    if missing:
        problems.append(f"{len(missing)} accepted mutating requests have no audit row")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    from benchmarks.batch_scoring import local_platform

    with local_platform() as (url, password):
        result = run_load(url, "admin", password, args.clients, args.seconds)
        problems = lost_writes(result, url, "admin", password)
    print(result.table())
    print("\nerrors:", len(result.errors), *result.errors[:10], sep="\n  ")
    print("lost writes:", problems or "none")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "load.md").write_text(result.table() + "\n")
    return 1 if result.errors or problems else 0


if __name__ == "__main__":
    sys.exit(main())
