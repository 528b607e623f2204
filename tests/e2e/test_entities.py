"""Prediction by entity id: the index keeps each entity's latest row, and predicting an
entity answers exactly what posting its features answers."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.conftest import customers, put_dataset, wait_for

pytestmark = pytest.mark.e2e

FEATURES = ["x", "y", "hour", "color"]


def feature_table(seed: int, n_customers: int = 300, updates: int = 3) -> pd.DataFrame:
    """Several dated rows per customer, shuffled so file order is not time order."""
    frames = []
    for update in range(updates):
        frame = customers(seed + update, n_customers).drop(columns="label")
        frame.insert(0, "customer_id", np.arange(1000, 1000 + n_customers))
        frame["updated_at"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=update)
        frames.append(frame)
    rng = np.random.default_rng(seed)
    table = pd.concat(frames, ignore_index=True)
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(host) -> dict:
    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    suffix = secrets.token_hex(3)
    name, features = f"ent-clf-{suffix}", f"ent-features-{suffix}"
    put_dataset(client, headers, name, customers(0, 800))
    spec = {
        "dataset": name,
        "target": "label",
        "features": FEATURES,
        "algorithm": "random_forest",
        "params": {"n_estimators": 10},
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=headers, json=spec).status_code == 201
    r = client.post("/train", headers=headers, json={"specs": [name]})
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    table = feature_table(5)
    put_dataset(client, headers, features, table)
    return {"name": name, "features": features, "table": table}


def latest_rows(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("updated_at").groupby("customer_id").tail(1).set_index("customer_id")


def test_index_then_predict_one_and_many(client, admin_headers, model) -> None:
    name = model["name"]
    body = {"dataset": model["features"], "key": "customer_id", "order_by": "updated_at"}
    r = client.put(f"/models/{name}/entities", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["entities"] == 300 and info["rows_read"] == 900
    assert client.get(f"/models/{name}/entities", headers=admin_headers).json() == info

    latest = latest_rows(model["table"])
    ids = [1000, 1007, 1299]
    records = [latest.loc[i, FEATURES].to_dict() for i in ids]
    direct = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records, "return_probabilities": True},
    ).json()

    r = client.get(
        f"/predict/{name}/entities/1007",
        headers=admin_headers,
        params={"return_probabilities": "true", "include_features": "true"},
    )
    assert r.status_code == 200, r.text
    one = r.json()["results"][0]
    assert one["id"] == "1007" and one["prediction"] == direct["predictions"][1]
    assert one["probabilities"] == pytest.approx(direct["probabilities"][1])
    assert one["features"]["updated_at"].startswith("2026-01-03")  # the latest of three rows

    r = client.post(
        f"/predict/{name}/entities",
        headers=admin_headers,
        json={"ids": ids, "return_probabilities": True},
    )
    assert r.status_code == 200, r.text
    many = r.json()
    assert [res["id"] for res in many["results"]] == ["1000", "1007", "1299"]
    assert [res["prediction"] for res in many["results"]] == direct["predictions"]
    assert many["versions"] == [direct["version"]]


def test_unknown_ids_are_named_in_a_404(client, admin_headers, model) -> None:
    name = model["name"]
    body = {"dataset": model["features"], "key": "customer_id"}
    assert (
        client.put(f"/models/{name}/entities", headers=admin_headers, json=body).status_code == 201
    )
    r = client.get(f"/predict/{name}/entities/77", headers=admin_headers)
    assert r.status_code == 404 and r.json()["code"] == "ENTITY_NOT_FOUND"
    assert "'77'" in r.json()["detail"]
    r = client.post(
        f"/predict/{name}/entities", headers=admin_headers, json={"ids": [1001, "nobody", 5]}
    )
    assert r.status_code == 404 and r.json()["missing_ids"] == ["nobody", "5"]


def test_index_errors_and_scopes(client, admin_headers, model, make_user) -> None:
    name, features = model["name"], model["features"]
    url = f"/models/{name}/entities"
    r = client.put(url, headers=admin_headers, json={"dataset": features, "key": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "key"]
    r = client.put(url, headers=admin_headers, json={"dataset": "no-such-data", "key": "k"})
    assert r.status_code == 404
    r = client.put(
        f"/models/no-such-model-{secrets.token_hex(2)}/entities",
        headers=admin_headers,
        json={"dataset": features, "key": "customer_id"},
    )
    assert r.status_code == 404
    # A model reader/predictor cannot read a dataset by indexing it.
    user = make_user(["user"])[3]
    body = {"dataset": features, "key": "customer_id"}
    assert client.put(url, headers=user, json=body).status_code == 403
    assert client.get(f"/predict/{name}/entities/1000", headers=user).status_code == 200
    r = client.get(f"/predict/no-index-{secrets.token_hex(2)}/entities/1", headers=user)
    assert r.status_code == 404


def test_delete_index(client, admin_headers, model) -> None:
    name = model["name"]
    body = {"dataset": model["features"], "key": "customer_id"}
    assert (
        client.put(f"/models/{name}/entities", headers=admin_headers, json=body).status_code == 201
    )
    assert client.delete(f"/models/{name}/entities", headers=admin_headers).status_code == 204
    r = client.get(f"/predict/{name}/entities/1000", headers=admin_headers)
    assert r.status_code == 404 and r.json()["code"] == "ENTITY_INDEX_NOT_FOUND"
