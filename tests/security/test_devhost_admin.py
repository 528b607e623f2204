"""Issue 15 #12: the local host's POST /admin/functions/{name} needs the master key
(x-functions-key) when DEVHOST_MASTER_KEY provides one, as the real host does, and every
call leaves an audit-style log line (who, what, allowed or refused)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import httpx
import pytest

from devhost.server import LocalHost, load_app
from devhost.settings import HostConfig

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sample_app.py"


@pytest.fixture(scope="module")
def sample_host():
    load_app(str(FIXTURE))
    sample = sys.modules["sample_app"]
    config = HostConfig.from_json({"extensions": {"http": {"routePrefix": ""}}})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SAMPLE_TIMER_SCHEDULE", "0 0 0 1 1 *")
        env.setenv("DEVHOST_MASTER_KEY", "a-long-local-master-key")
        with LocalHost(sample.app, port=0, config=config, timers=False, queues=False) as host:
            yield host, sample


def test_admin_invocation_needs_the_master_key(sample_host, caplog) -> None:
    host, sample = sample_host
    caplog.set_level(logging.INFO, logger="devhost")
    runs = len(sample.TIMER_RUNS)
    with httpx.Client(base_url=host.url, timeout=10) as c:
        for headers in ({}, {"x-functions-key": "wrong"}, {"x-functions-key": ""}):
            r = c.post("/admin/functions/tick", headers=headers)
            assert r.status_code == 401, r.text
        assert len(sample.TIMER_RUNS) == runs  # nothing ran
        r = c.post("/admin/functions/tick", headers={"x-functions-key": "a-long-local-master-key"})
        assert r.status_code == 202
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "devhost"]
    assert sum("admin invoke refused" in line and "tick" in line for line in lines) == 3
    assert any("admin invoke tick" in line and "accepted" in line for line in lines)
    assert not any("a-long-local-master-key" in line or "wrong" in line for line in lines)


def test_without_a_configured_key_the_local_host_stays_open(monkeypatch) -> None:
    load_app(str(FIXTURE))
    sample = sys.modules["sample_app"]
    monkeypatch.delenv("DEVHOST_MASTER_KEY", raising=False)
    monkeypatch.setenv("SAMPLE_TIMER_SCHEDULE", "0 0 0 1 1 *")
    config = HostConfig.from_json({"extensions": {"http": {"routePrefix": ""}}})
    with LocalHost(sample.app, port=0, config=config, timers=False, queues=False) as host:
        assert host.host == "127.0.0.1"  # loopback only
        r = httpx.post(f"{host.url}/admin/functions/tick", timeout=10)
        assert r.status_code == 202
