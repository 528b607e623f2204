"""Training over HTTP: the ADF sequence, the timer, partitions, failures, idempotency."""

import secrets
import time

import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.e2e.conftest import put_dataset, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return frame


@pytest.fixture(scope="module")
def rooms():
    """Room usage: 22 rooms with enough rows, 3 with too few for min_rows=50."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    frames = []
    for i in range(25):
        n = 120 if i < 22 else 20
        hour = rng.integers(0, 24, n)
        frames.append(
            pd.DataFrame(
                {
                    "room": f"room-{i:02d}",
                    "hour": hour,
                    "occupancy": rng.poisson(3 + i % 5, n),
                    "co2": rng.normal(600 + 10 * i, 50, n),
                    "temperature": rng.normal(21, 1.5, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_adf_sequence_trains_breast_cancer(client, breast_cancer) -> None:
    # Exactly the pipeline's steps: form login, POST /train, poll the Location.
    token = client.post(
        "/auth/jwt/login",
        content=f"username={ADMIN}&password={ADMIN_PASSWORD}".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    name = f"bc-{secrets.token_hex(3)}"
    put_dataset(client, headers, name, breast_cancer)
    spec = {
        "dataset": name,
        "target": "target",
        "algorithm": "random_forest",
        "params": {"n_estimators": 100},
        "enabled": False,
    }
    r = client.put(f"/train/specs/{name}", headers=headers, json=spec)
    assert r.status_code == 201, r.text
    r = client.post("/train", headers=headers, json={"specs": [name]})
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued" and r.headers["location"] == body["status_url"]
    assert int(r.headers["retry-after"]) > 0
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    assert job["trigger"] == "http"
    [result] = job["results"]
    assert result["status"] == "succeeded" and result["model"] == name
    assert result["metrics"]["accuracy"] >= 0.93
    assert result["promoted"] is True and result["onnx"] is True
    info = client.get(f"/models/{name}/versions/{result['version']}", headers=headers).json()
    assert info["lineage"]["job_id"] == job["job_id"]
    assert info["lineage"]["dataset"] == name and len(info["lineage"]["dataset_sha256"]) == 64
    assert info["task"] == "classification" and "champion" in info["aliases"]
    roles = {f["role"] for f in info["files"]}
    assert {"model", "serving", "artifact"} <= roles
    assert (
        client.get(f"/models/{name}/versions/{result['version']}/verify", headers=headers).json()[
            "status"
        ]
        == "valid"
    )


def test_diabetes_regression_and_if_better_promotion(client, admin_headers) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    name = f"diab-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, frame)
    spec = {
        "dataset": name,
        "target": "target",
        "algorithm": "gradient_boosting",
        "params": {"n_estimators": 100, "max_depth": 2},
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=admin_headers, json=spec).status_code == 201
    first = wait_for(
        client,
        admin_headers,
        client.post("/train", headers=admin_headers, json={"specs": [name]}).headers["location"],
    )
    [result] = first["results"]
    assert result["metrics"]["r2"] >= 0.35 and result["promoted"] is True
    # The same data and seed cannot beat the champion's rmse: no promotion.
    second = wait_for(
        client,
        admin_headers,
        client.post("/train", headers=admin_headers, json={"specs": [name]}).headers["location"],
    )
    assert second["results"][0]["version"] == result["version"] + 1
    assert second["results"][0]["promoted"] is False
    champion = client.get(f"/models/{name}/aliases/champion", headers=admin_headers).json()
    assert champion["version"] == result["version"]
    # Why: the rule, the metric and both values, on the job result and on the version.
    assert result["promotion"]["reason"] == "No champion yet: the first is promoted."
    why = second["results"][0]["promotion"]
    assert why["rule"] == "if_better" and why["metric"] == "rmse"
    assert why["higher_is_better"] is False and why["champion_version"] == result["version"]
    assert why["champion_value"] == result["metrics"]["rmse"]
    assert why["candidate_value"] == second["results"][0]["metrics"]["rmse"]
    assert "not promoted" in why["reason"] and "lower is better" in why["reason"]
    version = client.get(
        f"/models/{name}/versions/{result['version'] + 1}", headers=admin_headers
    ).json()
    assert version["promotion"] == why


def test_partitioned_anomaly_spec_per_room(client, admin_headers, rooms) -> None:
    name = f"rooms-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, rooms)
    spec = {
        "dataset": name,
        "target": None,
        "algorithm": "isolation_forest",
        "params": {"n_estimators": 20},
        "partition_by": "room",
        "min_rows": 50,
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=admin_headers, json=spec).status_code == 201
    job = wait_for(
        client,
        admin_headers,
        client.post("/train", headers=admin_headers, json={"specs": [name]}).headers["location"],
    )
    assert job["status"] == "succeeded", job
    by_status: dict[str, list] = {}
    for r in job["results"]:
        by_status.setdefault(r["status"], []).append(r)
    assert len(by_status["succeeded"]) == 22
    skipped = sorted(r["partition"] for r in by_status["skipped"])
    assert skipped == ["room-22", "room-23", "room-24"]
    assert all("min_rows" in r["error"] for r in by_status["skipped"])
    version = by_status["succeeded"][0]["version"]
    assert {r["version"] for r in by_status["succeeded"]} == {version}
    info = client.get(f"/models/{name}/versions/{version}", headers=admin_headers).json()
    assert info["format"] == "partitioned" and info["task"] == "anomaly"
    assert info["metrics"]["partitions_trained"] == 22
    manifest = client.get(
        f"/models/{name}/versions/{version}/download", headers=admin_headers
    ).json()
    # Partition files are listed with their hashes in the (hashed) manifest, not the row.
    assert len({path.split("/")[1] for path in manifest["files"]}) == 22
    report = client.get(f"/models/{name}/versions/{version}/verify", headers=admin_headers)
    assert report.json()["status"] == "valid" and len(report.json()["files"]) > 22 * 2
    assert set(manifest["partitions"]) == {f"room-{i:02d}" for i in range(22)}
    assert 0 < info["metrics"]["anomaly_rate"] < 0.5


def test_a_failing_unit_fails_alone(client, admin_headers, rooms) -> None:
    import numpy as np

    frame = rooms[rooms.room < "room-22"].copy()
    # A label per room; room-03 has a single class, which cannot train a classifier.
    frame["busy"] = np.where(frame.occupancy > 4, "yes", "no")
    frame.loc[frame.room == "room-03", "busy"] = "no"
    name = f"busy-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, frame)
    spec = {
        "dataset": name,
        "target": "busy",
        "algorithm": "logistic_regression",
        "partition_by": "room",
        "min_rows": 50,
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=admin_headers, json=spec).status_code == 201
    job = wait_for(
        client,
        admin_headers,
        client.post("/train", headers=admin_headers, json={"specs": [name]}).headers["location"],
    )
    assert job["status"] == "partially_failed"
    failed = [r for r in job["results"] if r["status"] == "failed"]
    assert [r["partition"] for r in failed] == ["room-03"] and failed[0]["error"]
    assert sum(r["status"] == "succeeded" for r in job["results"]) == 21
    assert job["total_units"] < 21  # room-03 failed alone inside a unit of several rooms


def test_idempotent_post_and_unknown_specs(client, admin_headers, breast_cancer) -> None:
    name = f"idem-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, breast_cancer.iloc[:200])
    client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={
            "dataset": name,
            "target": "target",
            "algorithm": "logistic_regression",
            "enabled": False,
        },
    )
    headers = {**admin_headers, "Idempotency-Key": f"adf-run-{name}"}
    first = client.post("/train", headers=headers, json={"specs": [name]})
    again = client.post("/train", headers=headers, json={"specs": [name]})
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    r = client.post("/train", headers=admin_headers, json={"specs": [name, "no-such-spec"]})
    assert r.status_code == 404 and r.json()["code"] == "SPEC_NOT_FOUND"
    wait_for(client, admin_headers, first.headers["location"])


def test_spec_validation_names_the_missing_column(client, admin_headers, breast_cancer) -> None:
    name = f"val-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, breast_cancer.iloc[:50])
    r = client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={"dataset": name, "target": "no_such_column", "algorithm": "random_forest"},
    )
    assert r.status_code == 422 and "no_such_column" in r.json()["detail"]
    r = client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={"dataset": name, "target": "target", "algorithm": "ridge", "task": "classification"},
    )
    assert r.status_code == 422
    r = client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={"dataset": "absent-dataset", "target": "target", "algorithm": "ridge"},
    )
    assert r.status_code == 404
    r = client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={
            "dataset": name,
            "target": "target",
            "algorithm": "random_forest",
            "params": {"n_trees": 3},
        },
    )
    assert r.status_code == 422 and "n_trees" in r.json()["detail"]


def test_timer_function_starts_one_job(client, admin_headers, breast_cancer, services) -> None:

    name = f"timer-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, breast_cancer.iloc[:200])
    client.put(
        f"/train/specs/{name}",
        headers=admin_headers,
        json={"dataset": name, "target": "target", "algorithm": "logistic_regression"},
    )
    before = {
        j["job_id"]
        for j in client.get("/train/jobs", headers=admin_headers, params={"limit": 200}).json()[
            "items"
        ]
    }
    for _ in range(2):  # fired twice: Core Tools' admin endpoint, as an operator would
        r = client.post("/admin/functions/monthly_training", json={"input": ""})
        assert r.status_code == 202
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs = client.get("/train/jobs", headers=admin_headers, params={"limit": 200}).json()
        new = [j for j in jobs["items"] if j["job_id"] not in before and j["trigger"] == "timer"]
        if new:
            break
        time.sleep(0.2)
    assert len(new) == 1
    job = wait_for(client, admin_headers, f"/train/jobs/{new[0]['job_id']}")
    assert job["trigger"] == "timer" and name in job["specs"]
    assert services.trainer.start_scheduled().job_id == job["job_id"]  # same hour, same job


def test_training_routes_need_the_train_scope(client, make_user) -> None:
    _, _, _, headers = make_user(["user"])
    assert client.post("/train", headers=headers, json={}).status_code == 403
    assert client.get("/train/specs", headers=headers).status_code == 403
    assert client.get("/train/jobs/123", headers=headers).status_code == 403
