"""Batch scoring over HTTP against Azurite: POST /predict, poll, read what landed in Blob."""

from __future__ import annotations

import io
import json
import secrets
import time

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import (
    poll,
    put_dataset,
    read_parquet,
    scored_container,
    scoring_container,
    wait_for,
)

pytestmark = pytest.mark.e2e

ROOMS = ("r0", "r1", "r2", "r3")
N_ROWS = 100_000
UNKNOWN_ROOM_ROWS = 2_000


def room_frame(rows: int, seed: int, rooms=ROOMS):
    import pandas as pd

    rng = np.random.default_rng(seed)
    room = rng.choice(list(rooms), rows)
    hour = rng.integers(0, 24, rows)
    occupancy = rng.poisson(2 + 3 * ((hour >= 9) & (hour < 17)))
    return pd.DataFrame(
        {
            "room": room,
            "hour": hour,
            "occupancy": occupancy,
            "co2": np.round(420 + 45 * occupancy + rng.normal(0, 60, rows), 1),
        }
    )


@pytest.fixture(scope="module")
def rooms_model(host) -> tuple[str, int]:
    """A classifier per room (random forest, 10 trees), trained through the platform."""
    from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    frame = room_frame(1_200, seed=3)
    noisy = frame.occupancy + np.random.default_rng(4).normal(0, 1.5, len(frame))
    frame["busy"] = np.where(noisy > 4, "yes", "no")
    name = f"score-{secrets.token_hex(3)}"
    put_dataset(client, headers, name, frame)
    spec = {
        "dataset": name,
        "target": "busy",
        "algorithm": "random_forest",
        "params": {"n_estimators": 10},
        "partition_by": "room",
        "min_rows": 50,
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=headers, json=spec).status_code == 201
    r = client.post("/train", headers=headers, json={"specs": [name]})
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    return name, job["results"][0]["version"]


@pytest.fixture(scope="module")
def scoring_input(rooms_model):
    """100k rows in 10 row groups: four known rooms plus 2,000 rows of an unknown one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name, _ = rooms_model
    frame = room_frame(N_ROWS, seed=11)
    frame.loc[frame.index[-UNKNOWN_ROOM_ROWS:], "room"] = "r9"
    frame.insert(0, "reading_id", np.arange(N_ROWS, dtype=np.int64))
    frame["ts"] = np.datetime64("2026-01-01T00:00:00") + np.arange(N_ROWS).astype("timedelta64[m]")
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=10_000)
    # As ADF's Copy activity would: straight into Blob, no API call.
    scoring_container().upload_blob(f"{name}/drop-0001.parquet", buffer.getvalue(), overwrite=True)
    return frame


@pytest.fixture()
def small_chunks(monkeypatch):
    """Chunks of 30k rows (3 row groups) so 100k rows fan out over 4 queue messages."""
    from shared.prediction.batch import service as batch_service

    monkeypatch.setattr(batch_service, "CHUNK_ROWS", 30_000)


def test_partitioned_batch_scoring_fans_out_and_matches_online(
    client, admin_headers, rooms_model, scoring_input, small_chunks
) -> None:
    name, version = rooms_model
    r = client.post("/predict", headers=admin_headers, json={"model": name})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    assert r.headers["location"] == body["status_url"] == f"/predict/jobs/{body['job_id']}"
    assert int(r.headers["retry-after"]) > 0
    job, statuses = poll(client, admin_headers, r.headers["location"])
    assert statuses[0] == 202 and statuses[-1] == 200
    assert job["status"] == "succeeded", job
    assert job["model"] == name and job["version"] == version and job["dataset"] == name
    assert job["chunks"] == {
        "total": 4,
        "queued": 0,
        "running": 0,
        "succeeded": 4,
        "failed": 0,
        "cancelled": 0,
    }
    assert job["rows_scored"] == N_ROWS - UNKNOWN_ROOM_ROWS
    assert job["rows_failed"] == UNKNOWN_ROOM_ROWS
    assert job["failure_reasons"] == {"unknown partition 'r9'": UNKNOWN_ROOM_ROWS}
    assert job["finished_at"] and job["created_at"]
    assert job["outputs"] == [f"scored/{name}/{job['job_id']}.parquet"]

    table = read_parquet(job["outputs"][0])
    assert table.num_rows == N_ROWS - UNKNOWN_ROOM_ROWS
    assert table.column_names == [
        "reading_id",
        "room",
        "ts",
        "prediction",
        "probability",
        "model_version",
    ]
    known = scoring_input[scoring_input.room != "r9"]
    assert table.column("reading_id").to_pylist() == known.reading_id.tolist()  # input order
    assert set(table.column("model_version").to_pylist()) == {version}
    assert set(table.column("prediction").to_pylist()) <= {"yes", "no"}
    # The parts were concatenated and removed.
    assert not list(scored_container().list_blobs(name_starts_with=f"{name}/{job['job_id']}/"))

    # Every room's rows score exactly as online prediction with that room's sub-model.
    out = table.to_pandas().set_index("reading_id")
    for room in ROOMS:
        sample = known[known.room == room].sample(40, random_state=1)
        records = sample[["hour", "occupancy", "co2"]].to_dict("records")
        online = client.post(
            f"/predict/{name}",
            headers=admin_headers,
            json={"records": records, "partition": room, "return_probabilities": True},
        )
        assert online.status_code == 200, online.text
        answer = online.json()
        batch = out.loc[sample.reading_id]
        assert batch.prediction.tolist() == answer["predictions"]
        np.testing.assert_allclose(
            batch.probability, np.max(answer["probabilities"], axis=1), atol=1e-6
        )


def test_csv_input_both_outputs_and_row_failures(
    client, admin_headers, rooms_model, monkeypatch
) -> None:
    from shared.prediction.batch import service as batch_service

    monkeypatch.setattr(batch_service, "CHUNK_ROWS", 7_000)  # 3 CSV byte ranges
    name, version = rooms_model
    frame = room_frame(20_000, seed=5)
    frame.insert(0, "reading_id", np.arange(len(frame)))
    frame["note"] = np.where(np.arange(len(frame)) % 1000 == 0, 'a "quoted",\nnote', "")
    frame["occupancy"] = frame["occupancy"].astype(object)
    frame.loc[frame.index[5:15], "occupancy"] = "lots"  # 10 rows that cannot be typed
    dataset = f"{name}-csv"
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    scoring_container().upload_blob(f"{dataset}/rooms.csv", buffer.getvalue().encode())
    r = client.post(
        "/predict",
        headers=admin_headers,
        json={
            "model": name,
            "dataset": dataset,
            "output_format": "both",
            "probabilities": "per_class",
            "key_columns": ["reading_id", "note"],
        },
    )
    assert r.status_code == 202, r.text
    job, _ = poll(client, admin_headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    assert job["chunks"]["total"] == 3
    assert job["rows_failed"] == 10
    assert job["failure_reasons"] == {"feature 'occupancy' must be a number": 10}
    assert job["outputs"] == [
        f"scored/{name}/{job['job_id']}.parquet",
        f"scored/{name}/{job['job_id']}.csv",
    ]
    table = read_parquet(job["outputs"][0])
    assert table.column_names == [
        "reading_id",
        "note",
        "prediction",
        "proba_no",
        "proba_yes",
        "model_version",
    ]
    expected_ids = [i for i in range(20_000) if not 5 <= i < 15]
    assert table.column("reading_id").to_pylist() == expected_ids
    np.testing.assert_allclose(
        np.asarray(table.column("proba_no")) + np.asarray(table.column("proba_yes")), 1, atol=1e-5
    )
    assert table.column("note").to_pylist()[0] == 'a "quoted",\nnote'
    import pandas as pd

    text = scored_container().download_blob(f"{name}/{job['job_id']}.csv").readall()
    as_csv = pd.read_csv(io.BytesIO(text))
    assert len(as_csv) == len(expected_ids) and list(as_csv.columns) == table.column_names
    assert as_csv.prediction.tolist() == table.column("prediction").to_pylist()
    assert set(as_csv.model_version) == {version}


def test_unknowns_are_404_before_anything_is_queued(client, admin_headers, rooms_model) -> None:
    name, _ = rooms_model
    cases = [
        ({"model": "no-such-model"}, "MODEL_NOT_FOUND"),
        ({"model": name, "dataset": "no-such-scoring-set"}, "SCORING_DATASET_NOT_FOUND"),
        ({"model": name, "version": 999}, "VERSION_NOT_FOUND"),
        ({"model": name, "alias": "nosuchalias"}, "ALIAS_NOT_FOUND"),
        ({"alias": "nosuchalias"}, "NOTHING_TO_SCORE"),
    ]
    for body, code in cases:
        r = client.post("/predict", headers=admin_headers, json=body)
        assert r.status_code == 404, r.text
        assert r.json()["code"] == code
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.get("/predict/jobs/00000000000000nosuchjob", headers=admin_headers)
    assert r.status_code == 404 and r.json()["code"] == "SCORING_JOB_NOT_FOUND"
    r = client.post(
        "/predict", headers=admin_headers, json={"model": name, "version": 1, "alias": "x"}
    )
    assert r.status_code == 422
    r = client.post("/predict", headers=admin_headers, json={"output_format": "xlsx"})
    assert r.status_code == 422


def test_all_models_with_a_scoring_dataset_and_idempotency(
    client, admin_headers, rooms_model, scoring_input
) -> None:
    name, version = rooms_model
    headers = {**admin_headers, "Idempotency-Key": f"adf-score-{secrets.token_hex(4)}"}
    first = client.post("/predict", headers=headers)  # no body: "all unscored rooms"
    again = client.post("/predict", headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json()["job_id"] == again.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    job, _ = poll(client, admin_headers, first.headers["location"])
    mine = [t for t in job["targets"] if t["model"] == name]
    assert mine and mine[0]["dataset"] == name and mine[0]["version"] == version
    assert mine[0]["status"] == "succeeded" and mine[0]["rows_scored"] == N_ROWS - UNKNOWN_ROOM_ROWS
    # A scoring dataset that is not named after a model is not scored.
    assert all(not t["dataset"].endswith("-csv") for t in job["targets"])


def test_a_chunk_that_fails_every_retry_ends_the_job_partially_failed(
    client, admin_headers, rooms_model, scoring_input, small_chunks, monkeypatch, services
) -> None:
    from shared.prediction.batch import service as batch_service

    original = batch_service.BatchScorer._score_chunk

    def flaky(self, target, chunk, part):
        if chunk.seq == 1:
            raise RuntimeError("this chunk always fails")
        return original(self, target, chunk, part)

    monkeypatch.setattr(batch_service.BatchScorer, "_score_chunk", flaky)
    monkeypatch.setattr(services.batch_scorer, "max_dequeue_count", 1_000)
    name, _ = rooms_model
    r = client.post("/predict", headers=admin_headers, json={"model": name})
    location = r.headers["location"]
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # three chunks done, one retrying
        job = client.get(location, headers=admin_headers).json()
        if job["chunks"]["succeeded"] == 3:
            break
        time.sleep(0.3)
    assert job["chunks"]["succeeded"] == 3 and job["status"] == "running", job
    # What the host does after maxDequeueCount failures: the message goes to the poison queue.
    poison = services.storage.queue("scoring-poison")
    poison.send_message(json.dumps({"kind": "chunk", "job_id": job_id, "chunk_id": "000-000001"}))
    job, _ = poll(client, admin_headers, location, timeout=60)
    assert job["status"] == "partially_failed", job
    assert job["chunks"]["failed"] == 1 and job["chunks"]["succeeded"] == 3
    assert "gave up after repeated failures" in job["targets"][0]["error"]
    table = read_parquet(job["outputs"][0])
    assert table.num_rows == job["rows_scored"] == N_ROWS - 30_000 - UNKNOWN_ROOM_ROWS
    assert job["rows_failed"] == 30_000 + UNKNOWN_ROOM_ROWS


def test_scoring_routes_need_the_predict_scope(client, make_user) -> None:
    _, _, _, user = make_user(["user"])  # the built-in role has 'predict'
    r = client.post("/predict", headers=user, json={"model": "no-such-model"})
    assert r.status_code == 404
    assert client.get("/predict/jobs/abc", headers=user).status_code == 404
    assert client.post("/predict", json={}).status_code == 401
    assert client.get("/predict/jobs/abc").status_code == 401
    _, _, _, nobody = make_user([])
    assert client.post("/predict", headers=nobody, json={}).status_code == 403
