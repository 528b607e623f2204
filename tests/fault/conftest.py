"""Fault injection helpers: a queue that fails chosen sends, and a manual queue pump.

The jobs under test run against the session's real Azurite; only the queue they send to
is a private one, pumped by the test, so each redelivery happens at a chosen moment.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

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
    from shared import services

    queue = services.storage().queue(f"fault-{secrets.token_hex(4)}")
    try:
        yield queue
    finally:
        queue.delete_queue()


@pytest.fixture()
def trainer_on(private_queue: Any) -> Callable[..., Any]:
    """The app's trainer sending to the private queue through a FlakyQueue."""
    from shared import services

    def build(fail: Callable[[int, dict[str, Any]], bool]) -> Any:
        runner = copy.copy(services.trainer())
        runner.queue = FlakyQueue(private_queue, fail)
        return runner

    return build


@pytest.fixture()
def scorer_on(private_queue: Any) -> Callable[..., Any]:
    from shared.prediction.batch_service import batch_scorer

    def build(fail: Callable[[int, dict[str, Any]], bool]) -> Any:
        runner = copy.copy(batch_scorer())
        runner.queue = FlakyQueue(private_queue, fail)
        return runner

    return build
