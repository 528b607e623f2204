"""Fixtures for the security regression suite: a storage snapshot to prove that a refused
attack changed nothing, read straight from Azurite (not through the app)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

# Tables whose rows refusals are meant to touch: the audit trail (aggregated per window)
# and the login throttle (a failed login is counted there by design).
EXPECTED_WRITERS = frozenset({"Audit", "AuditRefusals", "LoginAttempts"})


def snapshot(conn: str, ignore: Iterable[str] = EXPECTED_WRITERS) -> dict[str, object]:
    """Every table row and blob (with its ETag) and every queue's length, except ``ignore``."""
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    skip = set(ignore)
    state: dict[str, object] = {}
    with TableServiceClient.from_connection_string(conn) as tables:
        for t in tables.list_tables():
            if t.name in skip:
                continue
            client = tables.get_table_client(t.name)
            state[f"table:{t.name}"] = sorted(
                (e["PartitionKey"], e["RowKey"], e.metadata.get("etag"))
                for e in client.list_entities()
            )
    with BlobServiceClient.from_connection_string(conn) as blobs:
        for c in blobs.list_containers():
            client = blobs.get_container_client(c.name)
            state[f"blob:{c.name}"] = sorted((b.name, b.etag) for b in client.list_blobs())
    with QueueServiceClient.from_connection_string(conn) as queues:
        for q in queues.list_queues():
            props = queues.get_queue_client(q.name).get_queue_properties()
            state[f"queue:{q.name}"] = props.approximate_message_count
    return state


@pytest.fixture()
def storage_state(app_env: dict[str, str]) -> Callable[..., dict[str, object]]:
    """``storage_state()`` returns the snapshot of the test Azurite, for before/after checks."""
    conn = app_env["STORAGE_CONNECTION_STRING"]
    return lambda ignore=EXPECTED_WRITERS: snapshot(conn, ignore)


def assert_problem(r, status: int | tuple[int, ...], code: str | None = None) -> dict:
    """A clean refusal: the status, problem+json, and the code when one is named."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    if code:
        assert body["code"] == code, body
    return body
