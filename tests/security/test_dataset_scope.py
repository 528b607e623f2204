"""Issue 15 #1: reading a dataset through evaluate or drift needs the dataset scope."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.test_registry import upload
from tests.e2e.test_training import put_dataset
from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def model_and_data(host) -> tuple[str, str]:
    """A regressor uploaded with target ``y``, and a dataset that also holds a secret column."""
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

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


def test_models_read_alone_cannot_evaluate_or_drift_on_a_dataset(
    client, make_user, model_and_data, storage_state
) -> None:
    name, dataset = model_and_data
    reader = make_user(["user"])[3]  # models:read + predict, no train
    before = storage_state()
    r = client.post(
        f"/models/{name}/versions/1/evaluate",
        headers=reader,
        json={"dataset": dataset, "target": "ssn", "include_features": True},
    )
    body = assert_problem(r, 403, "MISSING_SCOPE")
    assert body["missing_scope"] == "train"
    r = client.post(f"/models/{name}/drift", headers=reader, json={"dataset": dataset})
    assert_problem(r, 403, "MISSING_SCOPE")
    assert "ssn" not in r.text
    assert storage_state() == before
    # Records the caller sends (no dataset) stay open to models:read.
    records = [{"a": 0.1, "b": 0.2}]
    r = client.post(f"/models/{name}/drift", headers=reader, json={"records": records})
    assert r.status_code != 403, r.text


def test_evaluate_target_must_be_the_models_own(
    client, admin_headers, model_and_data, storage_state
) -> None:
    name, dataset = model_and_data
    before = storage_state()
    r = client.post(
        f"/models/{name}/versions/1/evaluate",
        headers=admin_headers,
        json={"dataset": dataset, "target": "ssn"},
    )
    assert_problem(r, 422, "TARGET_MISMATCH")
    assert "000000001" not in r.text
    assert storage_state() == before
    ok = client.post(
        f"/models/{name}/versions/1/evaluate",
        headers=admin_headers,
        json={"dataset": dataset, "target": "y", "worst": 1},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["target"] == "y"
