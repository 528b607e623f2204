"""Issue 16 item 6: concurrent alias moves report an exact ``previous_version`` chain."""

from __future__ import annotations

import concurrent.futures
import secrets
from collections import Counter

import httpx
import pytest

from tests.fault.conftest import tiny_onnx_bytes, upload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def tiny_onnx() -> bytes:
    return tiny_onnx_bytes()


def test_twenty_concurrent_moves_form_one_chain(host, admin_headers, tiny_onnx) -> None:
    model = f"chain-{secrets.token_hex(3)}"
    with httpx.Client(base_url=host.url, timeout=60) as client:
        for _ in range(5):
            r = upload(client, admin_headers, model, tiny_onnx)
            assert r.status_code == 201, r.text
        first = client.put(
            f"/models/{model}/aliases/champion", headers=admin_headers, json={"version": 1}
        )
        assert first.status_code == 200 and first.json()["previous_version"] is None
    moves = [2 + i % 4 for i in range(20)]

    def move(version: int) -> int | None:
        with httpx.Client(base_url=host.url, timeout=60) as own:
            r = own.put(
                f"/models/{model}/aliases/champion",
                headers=admin_headers,
                json={"version": version},
            )
            assert r.status_code == 200, r.text
            return r.json()["previous_version"]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        previous = list(pool.map(move, moves))
    with httpx.Client(base_url=host.url, timeout=60) as client:
        final = client.get(f"/models/{model}/aliases/champion", headers=admin_headers).json()
    # Some order of the 20 moves explains every answer: each move replaced exactly the
    # version the move before it set (the first one replaced 1), and the last one stands.
    assert None not in previous
    assert Counter(previous) == Counter([1, *moves]) - Counter([final["version"]])
