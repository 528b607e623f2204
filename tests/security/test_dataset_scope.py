"""Issue 15 #1: reading a dataset through evaluate or drift needs the dataset scope."""

from __future__ import annotations

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


def test_models_read_alone_cannot_evaluate_or_drift_on_a_dataset(
    client, make_user, regressor, storage_state
) -> None:
    name, dataset = regressor
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
    client, admin_headers, regressor, storage_state
) -> None:
    name, dataset = regressor
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
