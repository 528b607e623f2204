"""Issue 16: 50 clients for 60 s mixing login, list, predict and upload on loopback, with
zero errors and nothing lost. LOAD_SECONDS / LOAD_CLIENTS make the long variant, e.g.
``LOAD_SECONDS=600 LOAD_CLIENTS=100 .venv/bin/python -m pytest -q -s tests/load``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD

pytestmark = pytest.mark.load


def test_fifty_clients_for_a_minute_lose_nothing(host: Any, capsys: pytest.CaptureFixture) -> None:
    from benchmarks.load import lost_writes, run_load

    clients = int(os.environ.get("LOAD_CLIENTS", "50"))
    seconds = float(os.environ.get("LOAD_SECONDS", "60"))
    result = run_load(host.url, ADMIN, ADMIN_PASSWORD, clients=clients, seconds=seconds)
    problems = lost_writes(result, host.url, ADMIN, ADMIN_PASSWORD)
    with capsys.disabled():
        print("\n" + result.table())
    assert result.errors == [], result.errors[:10]
    assert set(result.latencies) == {"login", "list", "predict", "upload"}
    assert problems == []
