"""Data ingestion over HTTP: records appended as immutable parts, idempotent, checked
against the dataset's columns, and seen by training and batch scoring."""

from __future__ import annotations

import io
import secrets

import pytest

from tests.e2e.conftest import customers, poll, put_dataset, scoring_container, wait_for

pytestmark = pytest.mark.e2e


def _blobs(name: str) -> list[str]:
    from shared.http import current_services

    container = current_services().storage.container("datasets")
    return sorted(b.name for b in container.list_blobs(name_starts_with=f"{name}/"))


@pytest.fixture()
def dataset(client, admin_headers) -> str:
    name = f"ing-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, customers(0, 200))
    return name


def records(seed: int, n: int) -> list[dict]:
    return customers(seed, n).to_dict("records")


def test_records_append_a_part_once_and_training_sees_them(client, admin_headers, dataset) -> None:
    url = f"/datasets/{dataset}/records"
    batch = records(1, 50)
    r = client.post(url, headers=admin_headers, json=batch)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["rows"] == 50 and body["replayed"] is False
    assert body["dataset"]["row_count"] == 250 and len(body["dataset"]["files"]) == 2
    part = body["part"]
    assert part.startswith(f"{dataset}/part-") and part.endswith(".parquet")

    again = client.post(url, headers=admin_headers, json=batch)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.headers["idempotent-replayed"] == "true" and again.json()["part"] == part
    assert len(_blobs(dataset)) == 2  # stored once

    # CSV and Parquet bodies too; metadata follows every part.
    csv = customers(2, 30).to_csv(index=False).encode()
    r = client.post(url, headers={**admin_headers, "Content-Type": "text/csv"}, content=csv)
    assert r.status_code == 201, r.text
    buffer = io.BytesIO()
    customers(3, 20).to_parquet(buffer, index=False)
    r = client.post(
        url,
        headers={**admin_headers, "Content-Type": "application/vnd.apache.parquet"},
        content=buffer.getvalue(),
    )
    assert r.status_code == 201, r.text
    view = client.get(f"/datasets/{dataset}", headers=admin_headers).json()
    assert view["row_count"] == 300 and len(view["files"]) == 4
    assert view["format"] == "mixed"

    spec = {"dataset": dataset, "target": "label", "algorithm": "logistic_regression"}
    r = client.put(
        f"/train/specs/{dataset}", headers=admin_headers, json={**spec, "enabled": False}
    )
    assert r.status_code == 201, r.text
    job = wait_for(
        client,
        admin_headers,
        client.post("/train", headers=admin_headers, json={"specs": [dataset]}).headers["location"],
    )
    assert job["status"] == "succeeded", job
    assert job["results"][0]["n_rows"] == 300  # the upload and every ingested part


def test_idempotency_key_and_refusals_change_nothing(client, admin_headers, dataset) -> None:
    url = f"/datasets/{dataset}/records"
    key = {"Idempotency-Key": f"batch-{secrets.token_hex(4)}"}
    first = client.post(url, headers={**admin_headers, **key}, json=records(4, 5))
    assert first.status_code == 201, first.text
    replay = client.post(url, headers={**admin_headers, **key}, json=records(4, 5))
    assert replay.status_code == 200 and replay.json() == {**first.json(), "replayed": True}
    other = client.post(url, headers={**admin_headers, **key}, json=records(5, 5))
    assert other.status_code == 422  # the key was used for a different batch
    before = _blobs(dataset)

    bad = records(6, 3)
    bad[1]["x"] = "high"
    bad[2]["nickname"] = "zed"
    del bad[0]["color"]
    r = client.post(url, headers=admin_headers, json=bad)
    assert r.status_code == 422, r.text
    locs = {tuple(e["loc"]) for e in r.json()["errors"]}
    assert locs == {("body", 0, "color"), ("body", 1, "x"), ("body", 2, "nickname")}
    for body in ([], {"x": 1}, [1, 2]):
        assert client.post(url, headers=admin_headers, json=body).status_code == 422
    r = client.post(
        url, headers={**admin_headers, "Content-Type": "text/csv"}, content=b"x,y\n1,2\n"
    )
    assert r.status_code == 422  # columns missing
    r = client.post(
        f"/datasets/no-such-{secrets.token_hex(2)}/records",
        headers=admin_headers,
        json=records(1, 1),
    )
    assert r.status_code == 404
    assert _blobs(dataset) == before  # nothing written by any refusal


@pytest.fixture(scope="module")
def scorer(host) -> str:
    import httpx

    from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    name = f"ing-model-{secrets.token_hex(3)}"
    put_dataset(client, headers, name, customers(0, 300))
    spec = {"dataset": name, "target": "label", "algorithm": "logistic_regression"}
    r = client.put(f"/train/specs/{name}", headers=headers, json={**spec, "enabled": False})
    assert r.status_code == 201, r.text
    r = client.post("/train", headers=headers, json={"specs": [name]})
    assert wait_for(client, headers, r.headers["location"])["status"] == "succeeded"
    return name


def test_scoring_records_are_scored_with_the_rest(client, admin_headers, scorer) -> None:
    name = f"ing-score-{secrets.token_hex(3)}"
    buffer = io.BytesIO()
    customers(8, 40).drop(columns="label").to_parquet(buffer, index=False)
    scoring_container().upload_blob(f"{name}/base.parquet", buffer.getvalue())  # as ADF does
    r = client.post(
        f"/scoring/{name}/records",
        headers=admin_headers,
        json=customers(9, 10).drop(columns="label").to_dict("records"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["dataset"]["row_count"] == 50
    r = client.post("/predict", headers=admin_headers, json={"model": scorer, "dataset": name})
    assert r.status_code == 202, r.text
    job, _ = poll(client, admin_headers, r.headers["location"])
    assert job["status"] == "succeeded" and job["rows_scored"] == 50
