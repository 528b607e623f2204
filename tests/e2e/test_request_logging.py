"""Exactly one log line per request: the app's for what a function answered, devhost's
for what no function did (an unknown route)."""

from __future__ import annotations

import logging
import time

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture()
def lines(caplog):
    app = logging.getLogger("ml_platform")  # does not propagate: JSON to stderr
    app.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="ml_platform")
    caplog.set_level(logging.INFO, logger="devhost")
    try:
        yield caplog
    finally:
        app.removeHandler(caplog.handler)


def request_lines(caplog, marker: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO
        and r.name in ("ml_platform.http", "devhost.http")
        and marker in r.getMessage()
    ]


def test_a_function_request_is_logged_once_by_the_app(client, admin_headers, lines) -> None:
    lines.clear()
    assert client.get("/models", headers=admin_headers).status_code == 200
    found = request_lines(lines, "models")
    assert [(r.name, r.getMessage()) for r in found] == [("ml_platform.http", "GET models 200")]


def test_what_no_function_answers_is_logged_once_by_the_host(client, lines) -> None:
    lines.clear()
    assert client.get("/no/such/route").status_code == 404
    # devhost writes its line after sending the answer: give its thread a moment.
    deadline = time.monotonic() + 2
    while not request_lines(lines, "/no/such/route") and time.monotonic() < deadline:
        time.sleep(0.01)
    found = request_lines(lines, "/no/such/route")
    assert len(found) == 1 and found[0].name == "devhost.http"
