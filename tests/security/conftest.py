"""Fixtures for the security regression suite: a storage snapshot to prove that a refused
attack changed nothing, read straight from Azurite (not through the app)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

# Tables whose rows refusals are meant to touch: the audit trail (aggregated per window)
# and the login throttle (a failed login is counted there by design).
# Counters written per request by design (rate limits, A/B traffic stats, flushed in the
# background) are left out too.
EXPECTED_WRITERS = frozenset({"Audit", "LoginAttempts", "RateLimits", "AbStats"})


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
    # A table or container the app creates on first use, still empty, holds no data.
    return {k: v for k, v in state.items() if v}


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


@pytest.fixture(scope="session")
def regressor(host) -> tuple[str, str]:
    """A regressor uploaded with target ``y``, and a dataset that also holds a secret column."""
    import numpy as np
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    from tests.e2e.conftest import put_dataset, upload

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    frame["y"] = frame.a - frame.b
    frame["ssn"] = [f"{i:09d}" for i in range(60)]
    model = LinearRegression().fit(frame[["a", "b"]], frame.y)
    name = f"sec-ds-{secrets.token_hex(3)}"
    r = upload(
        client,
        headers,
        name,
        sio.dumps(model),
        filename="m.skops",
        features=[{"name": "a", "dtype": "number"}, {"name": "b", "dtype": "number"}],
        task="regression",
        params={"target": "y"},
    )
    assert r.status_code == 201, r.text
    put_dataset(client, headers, name, frame)
    return name, name
