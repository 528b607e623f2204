"""Rate limits over HTTP: two host processes share one budget per API key; another key
keeps its own; 429 problem+json with Retry-After and the RateLimit headers; an admin sees
and resets the usage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, ROOT, bearer, login

pytestmark = pytest.mark.e2e
LIMIT = 4
DRIFT = {"records": [{"x": 1.0}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_host(tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,  # the session's storage and signing keys (app_env)
        "LOCAL_SETTINGS_PATH": str(tmp_path / "absent.json"),
        "RATE_LIMIT_DRIFT": f"{LIMIT}/60",
    }
    log = (tmp_path / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "--port",
            str(port),
            "--no-timers",
            "--settings",
            str(tmp_path / "absent.json"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/heartbeat", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{name} did not start:\n" + (tmp_path / f"{name}.log").read_text())


@pytest.fixture()
def two_hosts(app_env, tmp_path) -> Iterator[tuple[str, str]]:
    procs = [start_host(tmp_path, name) for name in ("host-a", "host-b")]
    try:
        yield procs[0][1], procs[1][1]
    finally:
        for proc, _ in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def new_key(url: str, headers: dict) -> tuple[str, str]:
    r = httpx.post(
        url + "/api-keys", headers=headers, json={"name": "rl", "scopes": ["models:read"]}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def remaining(response: httpx.Response) -> int:
    value = response.headers["ratelimit"]
    assert value.startswith('"drift";r=')
    return int(value.split("r=")[1].split(";")[0])


def test_two_hosts_share_one_budget_per_key(two_hosts) -> None:
    a, b = two_hosts
    admin = bearer(login(httpx.Client(base_url=a), ADMIN, ADMIN_PASSWORD))
    if 60 - time.time() % 60 < 15:  # the whole test within one fixed window
        time.sleep(60 - time.time() % 60 + 0.5)
    key_id, key = new_key(a, admin)
    _, other = new_key(a, admin)
    url = "/models/no-such-model/drift"

    answers = [
        httpx.post(host + url, headers={"X-API-Key": key}, json=DRIFT) for host in (a, b, a, b)
    ]
    assert [r.status_code for r in answers] == [404] * LIMIT  # counted, then answered
    assert [remaining(r) for r in answers] == [3, 2, 1, 0]
    assert answers[0].headers["ratelimit-policy"] == f'"drift";q={LIMIT};w=60'

    for host in (a, b):
        r = httpx.post(host + url, headers={"X-API-Key": key}, json=DRIFT)
        assert r.status_code == 429, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "RATE_LIMITED"
        assert 1 <= int(r.headers["retry-after"]) <= 60 and remaining(r) == 0

    r = httpx.post(b + url, headers={"X-API-Key": other}, json=DRIFT)
    assert r.status_code == 404 and remaining(r) == LIMIT - 1  # another key, its own budget

    usage = httpx.get(f"{a}/rate-limits/key:{key_id}", headers=admin).json()
    drift = next(g for g in usage["groups"] if g["group"] == "drift")
    assert drift["used"] == LIMIT and drift["remaining"] == 0 and drift["limit"] == LIMIT
    assert httpx.delete(f"{a}/rate-limits/key:{key_id}", headers=admin).status_code == 204
    for host in (a, b):
        assert httpx.post(host + url, headers={"X-API-Key": key}, json=DRIFT).status_code == 404


def test_admin_routes_need_admin_and_valid_subjects(client, admin_headers, make_user) -> None:
    user = make_user(["user"])[3]
    assert client.get("/rate-limits/user:x", headers=user).status_code == 403
    assert client.delete("/rate-limits/user:x", headers=user).status_code == 403
    for bad in ("nobody", "key:", "user:a%7Cb", "group:x"):
        assert client.get(f"/rate-limits/{bad}", headers=admin_headers).status_code in (404, 422)
    r = client.get("/rate-limits/user:someone", headers=admin_headers)
    assert r.status_code == 200 and {g["group"] for g in r.json()["groups"]} >= {"drift"}
