"""`python -m devhost` as a developer runs it, and /health through a storage outage."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def outage_azurite() -> Iterator[object]:
    """An Azurite of this test's own, so stopping it disturbs no other test."""
    from devhost.azurite import start_azurite

    server = start_azurite(in_memory=True)
    yield server
    server.stop()


@pytest.fixture()
def devhost(outage_azurite: object, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "STORAGE_CONNECTION_STRING": outage_azurite.connection_string,  # type: ignore[attr-defined]
        "AzureWebJobsStorage": outage_azurite.connection_string,  # type: ignore[attr-defined]
        "LOCAL_SETTINGS_PATH": str(tmp_path / "absent.json"),
        "GIT_METADATA": "e2e-build-1",
        "HEALTH_TIMEOUT_SECONDS": "1",
    }
    log = (tmp_path / "devhost.log").open("w")  # a file, not a pipe: it never fills up
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devhost",
            "--port",
            str(port),
            "--settings",
            str(tmp_path / "absent.json"),
            "--no-timers",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("devhost did not start:\n" + (tmp_path / "devhost.log").read_text())
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_devhost_serves_heartbeat_health_and_docs(devhost: str) -> None:
    assert httpx.get(devhost + "/heartbeat/").json() == {"version": "e2e-build-1"}
    assert httpx.get(devhost + "/health").status_code == 200
    assert httpx.get(devhost + "/docs").status_code == 200
    assert httpx.get(devhost + "/openapi.json").json()["info"]["version"] == "e2e-build-1"


def test_health_goes_503_within_5s_when_storage_stops_and_recovers(
    devhost: str, outage_azurite: object
) -> None:
    assert httpx.get(devhost + "/health").status_code == 200
    outage_azurite.stop()  # type: ignore[attr-defined]
    started = time.monotonic()
    r = httpx.get(devhost + "/health", timeout=10)
    elapsed = time.monotonic() - started
    assert r.status_code == 503
    assert elapsed < 5
    body = r.json()
    assert {"blob", "table", "queue"} <= set(body["failing"])
    assert r.headers["retry-after"]
    # Heartbeat does not depend on storage.
    assert httpx.get(devhost + "/heartbeat").status_code == 200
    outage_azurite.restart()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if httpx.get(devhost + "/health", timeout=10).status_code == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("health did not recover after Azurite came back")


def test_a_storage_outage_on_a_data_route_is_a_503_problem(
    devhost: str, outage_azurite: object
) -> None:
    outage_azurite.stop()  # type: ignore[attr-defined]
    r = httpx.post(devhost + "/auth/jwt/login", data={"username": "x", "password": "y"}, timeout=20)
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in r.text
