"""Online prediction over HTTP against Azurite, checked against the in-process models."""

import secrets
import time

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import train as train_spec
from tests.e2e.conftest import upload

pytestmark = pytest.mark.e2e


def load_skops(data: bytes):
    from shared.ml.serialize import load_skops as load

    return load(data)


def download(client, headers, model, version, artifact=None) -> bytes:
    params = {"artifact": artifact} if artifact else {}
    r = client.get(f"/models/{model}/versions/{version}/download", headers=headers, params=params)
    assert r.status_code == 200, r.text
    return r.content


@pytest.fixture(scope="module")
def cancer_frames():
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    return train_test_split(frame, test_size=0.1, random_state=3)


@pytest.fixture(scope="module")
def trained_classifier(host, cancer_frames) -> tuple[str, int]:
    """A classifier trained through the platform (ONNX serving), on 90% of the data."""
    client = httpx.Client(base_url=host.url, timeout=60)
    from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    train, _ = cancer_frames
    name = f"clf-{secrets.token_hex(3)}"
    version = train_spec(
        client,
        headers,
        name,
        train,
        target="target",
        algorithm="random_forest",
        params={"n_estimators": 30},
    )
    return name, version


def records_of(frame, drop=("target",)) -> list[dict]:
    return frame.drop(columns=[c for c in drop if c in frame.columns]).to_dict("records")


def test_classification_matches_the_in_process_model(
    client, admin_headers, cancer_frames, trained_classifier
) -> None:
    name, version = trained_classifier
    _, holdout = cancer_frames
    r = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records_of(holdout), "return_probabilities": True},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == version and body["model"] == name
    assert r.headers["x-model-version"] == str(version)
    model = load_skops(download(client, admin_headers, name, version))
    from shared.ml.pipeline import prepare_frame

    info = client.get(f"/models/{name}/versions/{version}", headers=admin_headers).json()
    X = prepare_frame(holdout.drop(columns=["target"]), info["features"])
    assert body["predictions"] == model.predict(X).tolist()
    np.testing.assert_allclose(body["probabilities"], model.predict_proba(X), atol=1e-4)
    assert body["classes"] == [0, 1]
    assert body["request_id"] == r.headers["x-request-id"]


def test_regression_through_the_sklearn_fallback(client, admin_headers) -> None:
    import skops.io as sio
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X[:400], y[:400])
    name = f"reg-{secrets.token_hex(3)}"
    assert (
        upload(
            client, admin_headers, name, sio.dumps(model), filename="m.skops", alias="champion"
        ).status_code
        == 201
    )
    r = client.post(
        f"/predict/{name}", headers=admin_headers, json={"records": X[400:].to_dict("records")}
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], model.predict(X[400:]), rtol=1e-9)


def test_partitioned_anomaly_model_per_room(client, admin_headers, trained_rooms) -> None:
    name, version, frame = trained_rooms
    rows = frame[frame.room == "r2"].head(20)
    r = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records_of(rows, drop=("room",)), "partition": "r2"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["partition"] == "r2" and set(body["predictions"]) <= {1, -1}
    manifest = client.get(
        f"/models/{name}/versions/{version}/download", headers=admin_headers
    ).json()
    entry = manifest["partitions"]["r2"]
    sub = load_skops(download(client, admin_headers, name, version, entry["skops"]))
    np.testing.assert_allclose(
        body["scores"], sub.decision_function(rows[["hour", "co2"]].astype(float)), atol=1e-4
    )
    assert body["predictions"] == sub.predict(rows[["hour", "co2"]].astype(float)).tolist()
    # Other partitions answer with their own model; an unknown one is a 404.
    other = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records_of(rows, drop=("room",)), "partition": "r0"},
    )
    assert other.json()["scores"] != body["scores"]
    missing = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records_of(rows, drop=("room",)), "partition": "r9"},
    )
    assert missing.status_code == 404 and missing.json()["code"] == "PARTITION_NOT_FOUND"
    needs = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records_of(rows, drop=("room",))},
    )
    assert needs.status_code == 422


def test_schema_violations(client, admin_headers, cancer_frames, trained_classifier) -> None:
    name, _ = trained_classifier
    _, holdout = cancer_frames
    good = records_of(holdout.head(3))
    missing = [dict(good[0]), {k: v for k, v in good[1].items() if k != "mean_radius"}]
    r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": missing})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["records", 1, "mean_radius"]
    wrong = [dict(good[0], mean_area="big")]
    r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": wrong})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["records", 0, "mean_area"]
    extra = [dict(good[0], room_id="r-7")]
    r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": extra})
    assert r.status_code == 200 and r.json()["ignored_fields"] == ["room_id"]
    r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": good * 200})
    assert r.status_code == 413  # MAX_PREDICT_RECORDS=500 in the test settings
    assert (
        client.post(f"/predict/{name}", headers=admin_headers, json={"records": []}).status_code
        == 422
    )


def test_unknown_model_version_alias(
    client, admin_headers, cancer_frames, trained_classifier
) -> None:
    name, version = trained_classifier
    rec = records_of(cancer_frames[1].head(1))
    cases = {
        "no-such-model": ({}, "MODEL_NOT_FOUND"),
        name: ({"version": version + 50}, "VERSION_NOT_FOUND"),
        f"{name}": ({"alias": "nosuchalias"}, "ALIAS_NOT_FOUND"),
    }
    for model, (extra, code) in cases.items():
        r = client.post(f"/predict/{model}", headers=admin_headers, json={"records": rec, **extra})
        assert r.status_code == 404 and r.json()["code"] == code, r.text


def test_promotion_is_visible_within_the_alias_ttl(client, admin_headers, onnx_models) -> None:
    name = f"promo-{secrets.token_hex(3)}"
    first, second, X = onnx_models
    upload(client, admin_headers, name, first, alias="champion")
    upload(client, admin_headers, name, second)
    rec = [dict(zip([f"f{i}" for i in range(X.shape[1])], map(float, X[0]), strict=True))]
    assert (
        client.post(f"/predict/{name}", headers=admin_headers, json={"records": rec}).json()[
            "version"
        ]
        == 1
    )
    client.put(f"/models/{name}/aliases/champion", headers=admin_headers, json={"version": 2})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if (
            client.post(f"/predict/{name}", headers=admin_headers, json={"records": rec}).json()[
                "version"
            ]
            == 2
        ):
            break
        time.sleep(0.2)
    else:
        pytest.fail("promotion not visible within 5 s (ALIAS_CACHE_TTL_SECONDS=1)")


@pytest.fixture(scope="module")
def onnx_models():
    """Two ONNX logistic regressions with one [n, 1] input per feature f0..f4."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    models = []
    for c in (1.0, 0.01):
        pipe = make_pipeline(
            ColumnTransformer([("n", "passthrough", list(frame.columns))]), LogisticRegression(C=c)
        ).fit(frame, y)
        onx = to_onnx(
            pipe,
            initial_types=[(n, FloatTensorType([None, 1])) for n in frame.columns],
            options={id(pipe.steps[-1][1]): {"zipmap": False}},
        )
        models.append(onx.SerializeToString())
    return models[0], models[1], X


def test_traffic_split_honours_weights_and_shadow_changes_nothing(
    client, admin_headers, onnx_models
) -> None:
    name = f"ab-{secrets.token_hex(3)}"
    first, second, X = onnx_models
    upload(client, admin_headers, name, first, alias="champion")
    upload(client, admin_headers, name, second, alias="challenger")
    rec = [dict(zip([f"f{i}" for i in range(5)], map(float, X[0]), strict=True))]
    baseline = client.post(f"/predict/{name}", headers=admin_headers, json={"records": rec}).json()
    r = client.put(
        f"/models/{name}/traffic", headers=admin_headers, json={"champion": 90, "challenger": 10}
    )
    assert r.status_code == 200, r.text
    versions = []
    for i in range(2000):
        body = client.post(
            f"/predict/{name}",
            headers={**admin_headers, "X-Routing-Key": f"user-{i}"},
            json={"records": rec},
        ).json()
        versions.append(body["version"])
    share = versions.count(2) / len(versions)
    assert 0.07 <= share <= 0.13, share
    same = {
        client.post(
            f"/predict/{name}",
            headers={**admin_headers, "X-Routing-Key": "u-1"},
            json={"records": rec},
        ).json()["version"]
        for _ in range(20)
    }
    assert len(same) == 1
    client.put(f"/models/{name}/traffic", headers=admin_headers, json={"shadow": "challenger"})
    time.sleep(1.1)
    with_shadow = client.post(
        f"/predict/{name}", headers=admin_headers, json={"records": rec}
    ).json()
    assert with_shadow["version"] == 1
    assert with_shadow["predictions"] == baseline["predictions"]
    time.sleep(0.5)
    results = client.get(f"/models/{name}/ab-results", headers=admin_headers).json()
    roles = {(v["variant"], v["role"]) for v in results["variants"]}
    assert ("challenger", "shadow") in roles and ("champion", "primary") in roles
    primary = {v["variant"]: v["requests"] for v in results["variants"] if v["role"] == "primary"}
    assert primary["champion"] + primary["challenger"] >= 2000
    assert results["shadow"][0]["compared_records"] >= 1
    assert (
        client.put(
            f"/models/{name}/traffic", headers=admin_headers, json={"champion": 50, "nosuch": 50}
        ).status_code
        == 404
    )


def test_feedback_metrics_per_version(client, admin_headers, onnx_models, services) -> None:
    name = f"fb-{secrets.token_hex(3)}"
    first, _, X = onnx_models
    upload(client, admin_headers, name, first, alias="champion")
    rec = [dict(zip([f"f{i}" for i in range(5)], map(float, row), strict=True)) for row in X[:4]]
    r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": rec})
    assert r.headers["x-prediction-logged"] == "true"
    predicted = r.json()["predictions"]

    services.prediction_log.drain(timeout=60)  # earlier tests queued thousands
    truth = [predicted[0], predicted[1], 1 - predicted[2], 1 - predicted[3]]
    fb = client.post(
        f"/predictions/{r.headers['x-prediction-id']}/feedback",
        headers=admin_headers,
        json={"actual": truth},
    )
    assert fb.status_code == 202, fb.text
    results = client.get(f"/models/{name}/ab-results", headers=admin_headers).json()
    [metrics] = results["feedback"]
    assert metrics["version"] == 1 and metrics["feedback_count"] == 4
    assert metrics["accuracy"] == 0.5
    assert (
        client.post(
            "/predictions/unknown-request/feedback", headers=admin_headers, json={"actual": 1}
        ).status_code
        == 404
    )


def test_predict_needs_the_predict_scope(client, make_user, trained_classifier) -> None:
    name, _ = trained_classifier
    _, _, _, headers = make_user(["user"])
    assert (
        client.post(f"/predict/{name}", headers=headers, json={"records": [{}]}).status_code == 422
    )  # allowed, bad input
    assert client.post(f"/predict/{name}", json={"records": [{}]}).status_code == 401


def test_metrics_count_predictions_by_model_and_version_and_cache_hits(
    client, admin_headers, cancer_frames, trained_classifier
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def values() -> dict:
        text = client.get("/metrics", headers=admin_headers).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    name, version = trained_classifier
    _, holdout = cancer_frames
    records = records_of(holdout)[:5]
    predicted = ("ml_predictions_total", (("model", name), ("version", str(version))))
    hits = ("ml_model_cache_lookups_total", (("result", "hit"),))
    misses = ("ml_model_cache_lookups_total", (("result", "miss"),))
    before = values()
    for _ in range(2):
        r = client.post(f"/predict/{name}", headers=admin_headers, json={"records": records})
        assert r.status_code == 200, r.text
    after = values()
    assert after[predicted] - before.get(predicted, 0) == 10
    # An OIP (V2) infer counts its rows too: it counted nothing before.
    names = list(records[0])
    tensor = {
        "inputs": [
            {
                "name": "input",
                "shape": [3, len(names)],
                "datatype": "FP64",
                "data": [[row[n] for n in names] for row in records[:3]],
            }
        ]
    }
    r = client.post(f"/v2/models/{name}/infer", headers=admin_headers, json=tensor)
    assert r.status_code == 200, r.text
    assert values()[predicted] - after[predicted] == 3
    # One lookup per prediction; the second one at least finds the model in the cache.
    hit_delta = after[hits] - before.get(hits, 0)
    assert hit_delta >= 1 and hit_delta + after.get(misses, 0) - before.get(misses, 0) == 2
    status = client.get("/status", headers=admin_headers).json()
    assert {"name": name, "version": version} in [
        {"name": m["name"], "version": m["version"]} for m in status["loaded_models"]
    ]
