"""devhost behaves like the Functions host where they used to differ: a wrong method is
404, ``%2F`` in a route value stays encoded, bodies over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT
are refused with 413, and a timer whose %SETTING% is missing disables only that timer."""

from __future__ import annotations

import http.client
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from devhost import HostConfig, LocalHost, load_app
from devhost.server import DEFAULT_MAX_BODY_BYTES, body_size_limit

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sample_app.py"
CONFIG = {"extensions": {"http": {"routePrefix": ""}}}


def fresh_sample() -> ModuleType:
    """A new app object each time: get_functions() may run once per app, as in the worker."""
    load_app(str(FIXTURE))
    return sys.modules["sample_app"]


@pytest.fixture()
def host(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalHost]:
    monkeypatch.setenv("SAMPLE_TIMER_SCHEDULE", "0 0 0 1 1 *")
    monkeypatch.setenv("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "2048")
    sample = fresh_sample()
    with LocalHost(sample.app, port=0, config=HostConfig.from_json(CONFIG), queues=False) as local:
        yield local


def test_a_wrong_method_is_404_like_the_host(host: LocalHost) -> None:
    with httpx.Client(base_url=host.url) as client:
        assert client.get("/slow").status_code == 200
        wrong = client.delete("/slow")
    assert wrong.status_code == 404
    assert "allow" not in wrong.headers


def test_an_encoded_slash_stays_encoded_in_a_route_value(host: LocalHost) -> None:
    with httpx.Client(base_url=host.url) as client:
        assert client.get("/models/a%2Fb").text == "model a%2Fb"
        assert client.get("/models/a%2fb").text == "model a%2fb"
        assert client.get("/models/res%20net").text == "model res net"  # others decode
        assert client.get("/models/a/b").status_code == 404


def test_a_body_over_the_host_limit_is_413(host: LocalHost) -> None:
    assert host.max_body_bytes == 2048
    with httpx.Client(base_url=host.url) as client:
        assert client.post("/models/compare", content=b"x" * 2048).text == "compare 2048 bytes"
        assert client.post("/models/compare", content=b"x" * 2049).status_code == 413


def test_a_chunked_body_over_the_limit_is_413(host: LocalHost) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    try:
        conn.request(
            "POST",
            "/models/compare",
            body=iter([b"x" * 1500, b"y" * 1500]),
            encode_chunked=True,
            headers={"Transfer-Encoding": "chunked"},
        )
        assert conn.getresponse().status == 413
    finally:
        conn.close()


def test_the_body_limit_defaults_to_the_hosts() -> None:
    assert body_size_limit({}) == DEFAULT_MAX_BODY_BYTES == 104_857_600
    assert body_size_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "300000000"}) == 300_000_000
    with pytest.raises(ValueError):
        body_size_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": "lots"})


def test_a_timer_with_a_missing_setting_is_disabled_and_the_host_runs_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SAMPLE_TIMER_SCHEDULE", raising=False)
    sample = fresh_sample()
    caplog.set_level(logging.ERROR, logger="devhost")
    with LocalHost(sample.app, port=0, config=HostConfig.from_json(CONFIG), queues=False) as local:
        assert set(local.disabled) == {"tick"}
        assert "SAMPLE_TIMER_SCHEDULE" in local.disabled["tick"]
        assert local.timers["tick"].schedule is None
        with httpx.Client(base_url=local.url) as client:
            assert client.get("/slow").status_code == 200
    assert any("timer disabled" in r.getMessage() for r in caplog.records)
