"""Issue 16 item 8: `python -m devhost` runs queue work in a worker process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.conftest import free_port, wait_for
from tests.fault.conftest import put_spec

pytestmark = pytest.mark.e2e


@pytest.fixture()
def split_host(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    from devhost.azurite import start_azurite

    azurite = start_azurite(in_memory=True)
    port = free_port()
    env = {
        **os.environ,
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "LOCAL_SETTINGS_PATH": str(tmp_path / "absent.json"),
        "BOOTSTRAP_ADMIN_USERNAME": "admin",
        "BOOTSTRAP_ADMIN_PASSWORD": "split-process-admin-pw",
        "JWT_SIGNING_KEY": "a-test-signing-key-of-enough-length-for-hs256-0123456789",
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "devhost.log").open("w")
    argv = [sys.executable, "-m", "devhost", "--port", str(port), "--no-timers"]
    argv += ["--settings", str(tmp_path / "absent.json")]
    proc = subprocess.Popen(
        argv,
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
                break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        azurite.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads the process table from /proc")
def test_training_runs_in_the_worker_process_and_it_is_restarted(split_host) -> None:
    url, proc = split_host
    [worker] = _children(proc.pid)  # the HTTP process has exactly one child: the worker
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post(
            "/auth/jwt/login", data={"username": "admin", "password": "split-process-admin-pw"}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        os.kill(worker, 9)  # a crashed worker instance: the host starts another one
        name = put_spec((client, headers))
        r = client.post("/train", headers=headers, json={"specs": [name]})
        job = wait_for(client, headers, r.headers["location"], timeout=120)
        assert job["status"] == "succeeded", job
    [replacement] = _children(proc.pid)
    assert replacement != worker
