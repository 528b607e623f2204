"""Drift and evaluation over HTTP, on models trained (or uploaded) through the platform."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.conftest import customers, features_of, put_dataset, rooms, upload, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(host) -> dict[str, tuple[str, int]]:
    """A classifier and a per-room anomaly model, trained in one job (small, fast)."""
    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    suffix = secrets.token_hex(3)
    clf, rooms_model = f"mon-clf-{suffix}", f"mon-rooms-{suffix}"
    put_dataset(client, headers, clf, customers(0, 1500))
    put_dataset(client, headers, rooms_model, rooms(1, ["r0", "r1", "r2"]))
    specs = {
        clf: {
            "dataset": clf,
            "target": "label",
            "algorithm": "random_forest",
            "params": {"n_estimators": 20},
            "enabled": False,
        },
        rooms_model: {
            "dataset": rooms_model,
            "algorithm": "isolation_forest",
            "partition_by": "room",
            "params": {"n_estimators": 20},
            "enabled": False,
        },
    }
    for name, spec in specs.items():
        r = client.put(f"/train/specs/{name}", headers=headers, json=spec)
        assert r.status_code == 201, r.text
    r = client.post("/train", headers=headers, json={"specs": list(specs)})
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    versions = {res["model"]: res["version"] for res in job["results"]}
    return {"clf": (clf, versions[clf]), "rooms": (rooms_model, versions[rooms_model])}


def drift(client, headers, name: str, **body) -> httpx.Response:
    return client.post(f"/models/{name}/drift", headers=headers, json=body)


# --- drift ------------------------------------------------------------------------------------


def test_records_from_the_training_distribution_do_not_drift(
    client, admin_headers, trained
) -> None:
    name, version = trained["clf"]
    r = drift(client, admin_headers, name, records=features_of(customers(11, 600)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["version"], body["partition"]) == (name, version, None)
    assert body["n_rows"] == 600 and body["source"] == "records" and not body["sampled"]
    assert body["drift_detected"] is False and body["drifted_features"] == []
    by_name = {f["name"]: f for f in body["features"]}
    assert set(by_name) == {"x", "y", "hour", "color"}
    assert by_name["x"]["test"] == "ks" and by_name["x"]["kind"] == "numeric"
    assert by_name["color"]["test"] == "chi2" and by_name["color"]["kind"] == "categorical"
    assert all(f["drift"] is False and f["n"] == 600 for f in body["features"])


def test_a_shifted_feature_drifts_alone(client, admin_headers, trained) -> None:
    name, _ = trained["clf"]
    records = features_of(customers(12, 600, shift_x=3.0))
    r = drift(client, admin_headers, name, records=records)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["drift_detected"] is True and body["drifted_features"] == ["x"]
    x = next(f for f in body["features"] if f["name"] == "x")
    assert x["p_value"] < 1e-6 and x["psi"] > 0.5 and x["statistic"] > 0.3
    # Unknown fields are ignored; a stricter threshold is honoured.
    strict = drift(
        client,
        admin_headers,
        name,
        records=[dict(r, note="n/a") for r in records],
        psi_threshold=100,
    ).json()
    assert strict["drift_detected"] is False and strict["psi_threshold"] == 100


def test_drift_on_a_dataset(client, admin_headers, trained) -> None:
    name, version = trained["clf"]
    dataset = f"mon-new-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, dataset, customers(13, 3000, mix=(0.2, 0.3, 0.5)))
    r = drift(client, admin_headers, name, dataset=dataset, version=version)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "dataset" and body["n_rows"] == 3000
    assert body["drifted_features"] == ["color"]
    missing = drift(client, admin_headers, name, dataset="no-such-dataset")
    assert missing.status_code == 404 and missing.json()["code"] == "DATASET_NOT_FOUND"


def test_drift_of_recent_predictions(client, admin_headers, trained, services) -> None:

    name, _ = trained["clf"]
    url = f"/models/{name}/drift/recent"
    none = client.get(url, headers=admin_headers, params={"hours": 1})
    assert none.status_code == 404 and none.json()["code"] == "NO_LOGGED_PREDICTIONS"
    assert none.headers["content-type"].startswith("application/problem+json")
    shifted = customers(14, 300, shift_x=3.0)
    for start in range(0, 300, 100):
        batch = features_of(shifted.iloc[start : start + 100])
        r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": batch})
        assert r.status_code == 200 and r.headers["x-prediction-logged"] == "true"
    services.prediction_log.drain()
    r = client.get(url, headers=admin_headers, params={"hours": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "predictions" and body["n_rows"] == 300 and body["since"]
    assert body["drifted_features"] == ["x"]
    bad = client.get(url, headers=admin_headers, params={"hours": "-1"})
    assert bad.status_code == 422


def test_partitioned_drift_uses_the_partitions_profile(client, admin_headers, trained) -> None:
    name, _ = trained["rooms"]
    r2 = rooms(21, ["r2"]).drop(columns=["room"]).to_dict("records")
    same = drift(client, admin_headers, name, records=r2, partition="r2")
    assert same.status_code == 200, same.text
    assert same.json()["partition"] == "r2" and same.json()["drift_detected"] is False
    other = drift(client, admin_headers, name, records=r2, partition="r0").json()
    assert other["drifted_features"] == ["co2"]  # r2's CO2 is 120 ppm (3 sigma) above r0's
    # Rows labelled with another room are not this room's data.
    mixed = rooms(22, ["r0", "r2"]).to_dict("records")
    only_r0 = drift(client, admin_headers, name, records=mixed, partition="r0").json()
    assert only_r0["n_rows"] == 150 and only_r0["drift_detected"] is False
    needs = drift(client, admin_headers, name, records=r2)
    assert needs.status_code == 422
    unknown = drift(client, admin_headers, name, records=r2, partition="r9")
    assert unknown.status_code == 404 and unknown.json()["code"] == "PARTITION_NOT_FOUND"


def test_drift_errors(client, admin_headers, trained) -> None:
    name, version = trained["clf"]
    records = features_of(customers(15, 30))
    cases = [
        ("no-such-model", {"records": records}, 404, "MODEL_NOT_FOUND"),
        (name, {"records": records, "version": version + 40}, 404, "VERSION_NOT_FOUND"),
        (name, {}, 422, "VALIDATION_FAILED"),
        (name, {"records": records, "dataset": "x"}, 422, "VALIDATION_FAILED"),
        (name, {"records": []}, 422, "VALIDATION_FAILED"),
        (name, {"records": records, "p_value_threshold": 2}, 422, "VALIDATION_FAILED"),
        (name, {"records": [1, 2]}, 422, "VALIDATION_FAILED"),
    ]
    for model, body, status, code in cases:
        r = client.post(f"/models/{model}/drift", headers=admin_headers, json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    few = drift(client, admin_headers, name, records=records[:10]).json()
    assert all(f["drift"] is None and f["reason"] for f in few["features"])
    assert client.post(f"/models/{name}/drift", json={"records": records}).status_code == 401


@pytest.fixture(scope="module")
def uploaded_regressor(host) -> tuple[str, object, pd.DataFrame]:
    """A scikit-learn regression uploaded as skops: no training profile, no target."""
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"a": rng.normal(size=400), "b": rng.uniform(0, 5, 400)})
    frame["target_y"] = 3 * frame.a - 2 * frame.b + rng.normal(0, 0.5, 400)
    model = LinearRegression().fit(frame[["a", "b"]].iloc[:200], frame.target_y.iloc[:200])
    name = f"mon-up-{secrets.token_hex(3)}"
    r = upload(
        client,
        headers,
        name,
        sio.dumps(model),
        filename="m.skops",
        features=[{"name": "a", "dtype": "number"}, {"name": "b", "dtype": "number"}],
        task="regression",
        artifacts=[("profile.json", b"not a profile")],
    )
    assert r.status_code == 201, r.text
    put_dataset(client, headers, name, frame.iloc[200:])
    return name, model, frame.iloc[200:]


def test_a_version_without_a_training_profile_is_409(
    client, admin_headers, uploaded_regressor
) -> None:
    name, _, frame = uploaded_regressor
    r = drift(client, admin_headers, name, records=frame[["a", "b"]].to_dict("records"))
    assert r.status_code == 409 and r.json()["code"] == "NO_TRAINING_PROFILE", r.text


# --- evaluation ---------------------------------------------------------------------------------


def test_evaluate_a_classifier_matches_sklearn(client, admin_headers, trained) -> None:
    name, version = trained["clf"]
    holdout = customers(31, 400)
    holdout.loc[[3, 7], "label"] = None  # unlabelled rows are skipped, and counted
    dataset = f"mon-eval-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, dataset, holdout)
    r = client.post(
        f"/models/{name}/versions/{version}/evaluate",
        headers=admin_headers,
        json={"dataset": dataset, "worst": 5},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_rows"] == 398 and body["skipped_rows"]["missing_target"] == 2
    assert body["target"] == "label" and body["task"] == "classification"
    assert body["truncated"] is False and body["residuals"] is None
    labelled = holdout.drop(index=[3, 7])
    predicted = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": features_of(labelled), "version": version, "return_probabilities": True},
    ).json()
    y_true, y_pred = labelled.label.tolist(), predicted["predictions"]
    classes = predicted["classes"]
    assert classes == ["no", "yes"]
    p_yes = np.asarray(predicted["probabilities"])[:, 1]
    m = body["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, pos_label="yes"))
    assert m["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, pos_label="yes"))
    assert m["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, pos_label="yes"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(np.array(y_true) == "yes", p_yes))
    assert body["confusion_matrix"]["labels"] == ["no", "yes"]
    expected = skm.confusion_matrix(y_true, y_pred, labels=["no", "yes"]).tolist()
    assert body["confusion_matrix"]["matrix"] == expected
    worst = body["worst_rows"]
    assert len(worst) == 5
    order = [(w["actual"] != w["predicted"], w["error"]) for w in worst]
    assert order == sorted(order, reverse=True)  # misclassified first, then least confident
    first = worst[0]
    assert set(first["features"]) == {"x", "y", "hour", "color"}
    assert first["actual"] == holdout.label[first["row"]]
    assert first["features"]["x"] == pytest.approx(holdout.x[first["row"]])
    assert first["error"] == pytest.approx(1 - first["probability"])


def test_evaluate_an_uploaded_regressor(client, admin_headers, uploaded_regressor) -> None:
    name, model, frame = uploaded_regressor
    url = f"/models/{name}/versions/1/evaluate"
    no_target = client.post(url, headers=admin_headers, json={"dataset": name})
    assert no_target.status_code == 422 and "target" in no_target.json()["detail"]
    r = client.post(
        url,
        headers=admin_headers,
        json={"dataset": name, "target": "target_y", "worst": 3, "max_rows": 150},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_rows"] == 150 and body["truncated"] is True
    rows = frame.iloc[:150]
    predicted = model.predict(rows[["a", "b"]])
    m = body["metrics"]
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(rows.target_y, predicted))
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(rows.target_y, predicted))
    assert m["r2"] == pytest.approx(skm.r2_score(rows.target_y, predicted))
    residuals = rows.target_y - predicted
    assert body["residuals"]["mean"] == pytest.approx(residuals.mean())
    assert body["residuals"]["p50"] == pytest.approx(np.median(residuals))
    assert body["confusion_matrix"] is None
    top = np.argsort(-np.abs(residuals.to_numpy()))[:3]
    assert [w["row"] for w in body["worst_rows"]] == top.tolist()
    assert body["worst_rows"][0]["error"] == pytest.approx(abs(residuals.iloc[top[0]]))


def test_evaluate_a_partitioned_anomaly_model(client, admin_headers, trained) -> None:
    name, version = trained["rooms"]
    frame = rooms(41, ["r0", "r1", "r7"], n=100)
    frame["alarm"] = False
    outliers = frame.index[frame.room != "r7"][::10]
    frame.loc[outliers, "co2"] = 3000.0
    frame.loc[outliers, "alarm"] = True
    dataset = f"mon-rooms-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, dataset, frame)
    url = f"/models/{name}/versions/{version}/evaluate"
    no_target = client.post(url, headers=admin_headers, json={"dataset": dataset})
    assert no_target.status_code == 422 and "nothing to evaluate" in no_target.json()["detail"]
    r = client.post(url, headers=admin_headers, json={"dataset": dataset, "target": "alarm"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_rows"] == 200 and body["skipped_rows"]["unknown_partition"] == 100
    assert body["task"] == "anomaly" and body["metrics"]["recall"] == 1.0
    assert body["confusion_matrix"]["labels"] == [1, -1]
    assert {w["partition"] for w in body["worst_rows"]} <= {"r0", "r1"}
    one = client.post(
        url, headers=admin_headers, json={"dataset": dataset, "target": "alarm", "partition": "r1"}
    ).json()
    assert one["n_rows"] == 100 and one["partition"] == "r1"
    assert one["skipped_rows"]["unknown_partition"] == 0


def test_evaluate_errors(client, admin_headers, trained) -> None:
    name, version = trained["clf"]
    url = f"/models/{name}/versions/{version}/evaluate"
    dataset = f"mon-nolabel-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, dataset, customers(51, 50).drop(columns=["label"]))
    cases = [
        (url, {"dataset": "no-such-dataset"}, 404, "DATASET_NOT_FOUND"),
        (url, {"dataset": dataset}, 422, "VALIDATION_FAILED"),  # no label column
        (url, {"dataset": dataset, "worst": 1000}, 422, "VALIDATION_FAILED"),
        (url, {}, 422, "VALIDATION_FAILED"),
        (
            f"/models/{name}/versions/{version + 40}/evaluate",
            {"dataset": dataset},
            404,
            "VERSION_NOT_FOUND",
        ),
        ("/models/no-such-model/versions/1/evaluate", {"dataset": dataset}, 404, "MODEL_NOT_FOUND"),
    ]
    for target_url, body, status, code in cases:
        r = client.post(target_url, headers=admin_headers, json=body)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
    assert client.post(url, json={"dataset": dataset}).status_code == 401
