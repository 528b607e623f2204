"""`make run`'s supervisor as a newcomer meets it: when it says Ready, the demo model
answers at once; Ctrl-C stops the host and Azurite and exits 0."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
PASSWORD = "run-local-" + secrets.token_hex(8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_means_the_demo_answers_and_ctrl_c_exits_0(tmp_path) -> None:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STORAGE_CONNECTION_STRING", "AzureWebJobsStorage")
    }
    env |= {
        "PORT": str(port),
        "AZURITE_DIR": str(tmp_path / "azurite"),
        "LOCAL_SETTINGS_PATH": str(tmp_path / "absent.json"),
        "BOOTSTRAP_ADMIN_USERNAME": "admin",
        "BOOTSTRAP_ADMIN_PASSWORD": PASSWORD,
        "TRAINING_SCHEDULE": "0 0 2 1 * *",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ready on"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(240), "no Ready line:\n" + "".join(lines[-40:])
        url = f"http://127.0.0.1:{port}"
        # The very first call after the banner predicts, as the README says.
        login = httpx.post(
            f"{url}/auth/jwt/login", data={"username": "admin", "password": PASSWORD}
        )
        token = login.json()["access_token"]
        started = time.perf_counter()
        r = httpx.post(
            f"{url}/predict/demo-iris",
            headers={"Authorization": f"Bearer {token}"},
            json={
                "records": [
                    {
                        "sepal_length": 5.1,
                        "sepal_width": 3.5,
                        "petal_length": 1.4,
                        "petal_width": 0.2,
                    }
                ]
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == ["setosa"]
        assert time.perf_counter() - started < 5  # warm: no model load on this call
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        reader.join(5)
    assert code == 0, "".join(lines[-40:])
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/heartbeat", timeout=2)
