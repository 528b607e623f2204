"""Fault injection helpers: a queue that fails chosen sends, and a manual queue pump.

The jobs under test run against the session's real Azurite; only the queue they send to
is a private one, pumped by the test, so each redelivery happens at a chosen moment.
"""

from __future__ import annotations

import copy
import io
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from azure.core.exceptions import ServiceRequestError

pytestmark = pytest.mark.fault


class FlakyQueue:
    """A real queue client whose ``send_message`` fails when ``fail(n, message)`` says so."""

    def __init__(self, client: Any, fail: Callable[[int, dict[str, Any]], bool]) -> None:
        self.client = client
        self.fail = fail
        self.sends = 0
        self.failures = 0

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        self.sends += 1
        if self.fail(self.sends, json.loads(content)):
            self.failures += 1
            raise ServiceRequestError("injected: storage unreachable while sending")
        return self.client.send_message(content, **kwargs)


def pump(runner: Any, queue: Any, rounds: int = 400, drain: bool = True) -> list[dict[str, Any]]:
    """Deliver messages until the queue is empty, as the host would: a failed delivery is
    made visible again at once (same message id, dequeue count + 1). Returns the bodies
    of the deliveries that raised."""
    failed = []
    for _ in range(rounds):
        messages = list(queue.receive_messages(max_messages=16, visibility_timeout=60))
        if not messages:
            return failed
        for message in messages:
            body = json.loads(message.content)
            try:
                runner.handle(body, message.dequeue_count or 1, message.id)
            except Exception:  # noqa: BLE001 - the host retries whatever failed
                failed.append(body)
                queue.update_message(message, visibility_timeout=0)
                continue
            queue.delete_message(message)
    if drain:
        pytest.fail("the queue never drained")
    return failed


@pytest.fixture()
def private_queue(app_env: dict[str, str]) -> Iterator[Any]:
    from shared.http import current_services

    queue = current_services().storage.queue(f"fault-{secrets.token_hex(4)}")
    try:
        yield queue
    finally:
        queue.delete_queue()


@pytest.fixture()
def trainer_on(private_queue: Any) -> Callable[..., Any]:
    """The app's trainer sending to the private queue through a FlakyQueue."""
    from shared.http import current_services

    def build(fail: Callable[[int, dict[str, Any]], bool]) -> Any:
        runner = copy.copy(current_services().trainer)
        runner.queue = FlakyQueue(private_queue, fail)
        return runner

    return build


@pytest.fixture()
def scorer_on(private_queue: Any) -> Callable[..., Any]:
    from shared.http import current_services

    def build(fail: Callable[[int, dict[str, Any]], bool]) -> Any:
        runner = copy.copy(current_services().batch_scorer)
        runner.queue = FlakyQueue(private_queue, fail)
        return runner

    return build


ROOMS = 4


def rooms_frame(rows_per_room: int = 60, seed: int = 5):
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(ROOMS):
        hour = rng.integers(0, 24, rows_per_room)
        occupancy = rng.poisson(2 + 3 * ((hour >= 9) & (hour < 17)))
        frames.append(
            pd.DataFrame(
                {
                    "room": f"room-{i}",
                    "hour": hour,
                    "co2": 420 + 45 * occupancy + rng.normal(0, 60, rows_per_room),
                    "busy": np.where(occupancy > 3, "yes", "no"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def put_spec(admin: tuple[httpx.Client, dict[str, str]], partitioned: bool = True) -> str:
    client, headers = admin
    name = f"fault-{secrets.token_hex(3)}"
    buffer = io.StringIO()
    rooms_frame().to_csv(buffer, index=False)
    r = client.put(
        f"/datasets/{name}",
        headers={**headers, "Content-Type": "text/csv"},
        content=buffer.getvalue().encode(),
    )
    assert r.status_code == 201, r.text
    spec = {
        "dataset": name,
        "target": "busy",
        "algorithm": "logistic_regression",
        "min_rows": 10,
        "enabled": False,
        **({"partition_by": "room"} if partitioned else {}),
    }
    assert client.put(f"/train/specs/{name}", headers=headers, json=spec).status_code == 201
    return name


def tiny_onnx_bytes() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return to_onnx(
        LogisticRegression(max_iter=500).fit(X, y), X[:1].astype("float32")
    ).SerializeToString()


def upload(client: httpx.Client, headers: dict, model: str, data: bytes) -> httpx.Response:
    files = [("model_file", ("model.onnx", data, "application/octet-stream"))]
    return client.post(f"/models/{model}/versions", headers=headers, files=files)
