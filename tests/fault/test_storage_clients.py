"""Issue 16 items 4 and 5: Blob, Queue and Table clients retry alike and fail fast when
storage is down; any storage refusal is a 4xx or a 503, never a 500."""

from __future__ import annotations

import socket
import time

import pytest
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError

from devhost.settings import azurite_connection_string
from shared.http.endpoint import _problem_for
from shared.settings import Settings
from shared.storage import Storage

pytestmark = pytest.mark.fault


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nobody listens once the socket is closed


@pytest.mark.parametrize("service", ["blob", "queue", "table"])
def test_every_client_fails_within_seconds_when_storage_is_down(service: str) -> None:
    port = _closed_port()
    settings = Settings(
        STORAGE_CONNECTION_STRING=azurite_connection_string(port, port, port),
        STORAGE_RETRY_TOTAL=2,
        STORAGE_RETRY_BACKOFF_SECONDS=0.5,
    )
    storage = Storage.from_settings(settings)
    calls = {
        "blob": lambda: storage.blob_service.get_container_client("x").get_container_properties(),
        "queue": lambda: storage.queue_service.get_queue_client("x").get_queue_properties(),
        "table": lambda: storage.table_service.get_table_client("x").get_entity("p", "r"),
    }
    started = time.monotonic()
    with pytest.raises(AzureError):
        calls[service]()
    elapsed = time.monotonic() - started
    storage.close()
    # Two retries 0.5 s (+-0.25) apart; the SDK default for Blob/Queue was 15 s, then 18 s.
    assert elapsed < 3, elapsed


@pytest.mark.parametrize("status", [400, 403, 404, 413, 416, 500, 503])
def test_storage_refusals_are_never_a_500(status: int) -> None:
    error = (
        ResourceNotFoundError("gone")
        if status == 404
        else HttpResponseError(f"storage said {status}")
    )
    error.status_code = status
    problem = _problem_for(error)
    assert problem.status == 503 and problem.headers["Retry-After"]


def test_contention_stays_a_409() -> None:
    error = HttpResponseError("precondition failed")
    error.status_code = 412
    assert _problem_for(error).status == 409
