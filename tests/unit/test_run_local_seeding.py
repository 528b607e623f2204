"""Issue 16 item 9: a storage hiccup while `make run` seeds the demo never kills it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _run_local():
    spec = importlib.util.spec_from_file_location("run_local", ROOT / "scripts" / "run_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_timeouts_and_503s_are_retried_until_the_seeding_is_done() -> None:
    run_local = _run_local()
    calls: list[str] = []
    faults = iter(["timeout", "503", "refused"])

    def storage_hiccups(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        fault = next(faults, None)
        if fault == "timeout":
            raise httpx.ReadTimeout("frozen storage", request=request)
        if fault == "refused":
            raise httpx.ConnectError("host restarting", request=request)
        if fault == "503":
            return httpx.Response(503, json={"status": 503})
        if request.url.path == "/auth/jwt/login":
            return httpx.Response(200, json={"access_token": "t"})
        return httpx.Response(200, json={"name": run_local.DEMO_MODEL})  # already seeded

    pauses: list[float] = []
    done = run_local.seed_with_retries(
        lambda: httpx.Client(
            base_url="http://127.0.0.1:1", transport=httpx.MockTransport(storage_hiccups)
        ),
        "admin",
        "pw",
        sleep=pauses.append,
    )
    assert done is True
    assert pauses == [1.0, 2.0, 4.0]  # backing off, never giving up
    assert calls[-2:] == ["/auth/jwt/login", f"/models/{run_local.DEMO_MODEL}"]


def test_it_stops_trying_when_the_supervisor_stops() -> None:
    run_local = _run_local()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    stops = iter([False, False, True])
    done = run_local.seed_with_retries(
        lambda: httpx.Client(base_url="http://127.0.0.1:1", transport=httpx.MockTransport(down)),
        "admin",
        "pw",
        stopped=lambda: next(stops),
        sleep=lambda s: None,
    )
    assert done is False
