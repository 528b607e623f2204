"""The Open Inference Protocol (KServe V2) over HTTP, checked against POST /predict.

Requests are written out as V2 JSON here (not built by shared/prediction/oip/), so a
drift between the code and the protocol shows up as a failing test.
"""

from __future__ import annotations

import json
import secrets

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import train, upload

pytestmark = pytest.mark.e2e

FRUIT_FEATURES = ["length", "width", "seeds", "ripe"]


@pytest.fixture(scope="module")
def fruit(host) -> tuple[str, int, object]:
    """A classifier trained here (ONNX serving): number, integer and bool features."""
    import pandas as pd

    from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    rng = np.random.default_rng(7)
    n = 240
    length = rng.normal(6, 1.5, n).round(2)
    seeds = rng.integers(0, 12, n)
    frame = pd.DataFrame(
        {
            "length": length,
            "width": (length * 0.6 + rng.normal(0, 0.4, n)).round(2),
            "seeds": seeds,
            "ripe": rng.random(n) > 0.5,
            "fruit": np.where(length > 6.5, "pear", np.where(seeds > 6, "apple", "plum")),
        }
    )
    name = f"fruit-{secrets.token_hex(3)}"
    version = train(
        client,
        headers,
        name,
        frame,
        target="fruit",
        features=FRUIT_FEATURES,
        algorithm="random_forest",
        params={"n_estimators": 10},
    )
    return name, version, frame


def predict(client, headers, model, records, **extra) -> dict:
    r = client.post(
        f"/predict/{model}",
        headers=headers,
        json={"records": records, "return_probabilities": True, **extra},
    )
    assert r.status_code == 200, r.text
    return r.json()


def infer(client, headers, model, body, version=None) -> httpx.Response:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, headers=headers, json=body)


def outputs(response: httpx.Response) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    return {o["name"]: o for o in response.json()["outputs"]}


def test_per_feature_and_2d_tensors_answer_like_predict(client, admin_headers, fruit) -> None:
    name, version, frame = fruit
    rows = frame.head(5)
    expected = predict(client, admin_headers, name, rows[FRUIT_FEATURES].to_dict("records"))

    length, width = rows["length"].tolist(), rows["width"].tolist()
    seeds, ripe = [int(s) for s in rows["seeds"]], [bool(r) for r in rows["ripe"]]
    per_feature = {
        "id": "req-1",
        "inputs": [
            # Any order, [n] or [n, 1], flat or nested: the names say which feature it is.
            {"name": "ripe", "shape": [5], "datatype": "BOOL", "data": ripe},
            {"name": "length", "shape": [5, 1], "datatype": "FP64", "data": length},
            {"name": "width", "shape": [5, 1], "datatype": "FP32", "data": [[w] for w in width]},
            {"name": "seeds", "shape": [5], "datatype": "INT64", "data": seeds},
        ],
    }
    r = infer(client, admin_headers, name, per_feature)
    body, got = r.json(), outputs(r)
    assert body["model_name"] == name and body["model_version"] == str(version)
    assert body["id"] == "req-1" and "parameters" not in body
    assert got["label"] == {
        "name": "label",
        "datatype": "BYTES",
        "shape": [5],
        "data": expected["predictions"],
    }
    assert got["probabilities"]["datatype"] == "FP32"
    assert got["probabilities"]["shape"] == [5, 3]
    assert got["probabilities"]["data"] == [p for row in expected["probabilities"] for p in row]
    assert json.loads(got["probabilities"]["parameters"]["classes"]) == expected["classes"]

    # One [n, k] tensor, columns in the metadata's feature order, the bool as 0/1.
    matrix = [
        [a, b, float(c), float(d)] for a, b, c, d in zip(length, width, seeds, ripe, strict=True)
    ]
    two_d = {"inputs": [{"name": "input-0", "shape": [5, 4], "datatype": "FP32", "data": matrix}]}
    r = infer(client, admin_headers, name, two_d, version=version)
    assert outputs(r) == got
    assert r.json()["id"] == r.headers["x-request-id"]  # no id sent: the request id
    flat = {
        "inputs": [
            {
                "name": "x",
                "shape": [5, 4],
                "datatype": "FP64",
                "data": [v for row in matrix for v in row],
            }
        ],
        "outputs": [{"name": "label"}],
    }
    assert outputs(infer(client, admin_headers, name, flat)) == {"label": got["label"]}


def test_metadata_lists_inputs_in_feature_order(client, admin_headers, fruit) -> None:
    name, version, _ = fruit
    r = client.get(f"/v2/models/{name}", headers=admin_headers)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["name"] == name and meta["versions"] == [str(version)]
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [
        {"name": "length", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "width", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "seeds", "datatype": "FP32", "shape": [-1, 1]},
        {"name": "ripe", "datatype": "BOOL", "shape": [-1, 1]},
    ]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
    ]
    same = client.get(f"/v2/models/{name}/versions/{version}", headers=admin_headers)
    assert same.json() == meta


def test_ready_and_health(client, admin_headers, fruit) -> None:
    name, version, _ = fruit
    for path in (f"/v2/models/{name}/ready", f"/v2/models/{name}/versions/{version}/ready"):
        r = client.get(path, headers=admin_headers)
        assert r.status_code == 200 and r.json() == {"name": name, "ready": True}, r.text
    assert client.get(f"/v2/models/{name}/ready").status_code == 401  # models stay closed
    live = client.get("/v2/health/live")
    assert live.status_code == 200 and live.json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    server = client.get("/v2")
    assert server.status_code == 200
    assert server.json() == {"name": "ml-platform", "version": "local", "extensions": []}


def test_unknown_models_and_versions_are_404(client, admin_headers, fruit) -> None:
    name, version, _ = fruit
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    cases = [
        ("post", "/v2/models/no-such-model/infer", "MODEL_NOT_FOUND"),
        ("post", f"/v2/models/{name}/versions/{version + 9}/infer", "VERSION_NOT_FOUND"),
        ("get", "/v2/models/no-such-model", "MODEL_NOT_FOUND"),
        ("get", f"/v2/models/{name}/versions/{version + 9}", "VERSION_NOT_FOUND"),
        ("get", "/v2/models/no-such-model/ready", "MODEL_NOT_FOUND"),
        ("get", f"/v2/models/{name}/versions/{version + 9}/ready", "VERSION_NOT_FOUND"),
    ]
    for method, path, code in cases:
        kw = {"json": body} if method == "post" else {}
        r = client.request(method.upper(), path, headers=admin_headers, **kw)
        assert r.status_code == 404, (path, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == code and problem["error"] == problem["detail"]
    alias = {**body, "parameters": {"alias": "nosuchalias"}}
    r = infer(client, admin_headers, name, alias)
    assert r.status_code == 404 and r.json()["code"] == "ALIAS_NOT_FOUND"


def test_bad_tensors_are_400(client, admin_headers, fruit) -> None:
    name, _, _ = fruit
    mismatch = {
        "inputs": [
            {"name": "m", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7]}
        ]
    }
    r = infer(client, admin_headers, name, mismatch)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "TENSOR_SHAPE_MISMATCH" and "8 elements" in problem["error"]
    missing = {"inputs": [{"name": "length", "shape": [1], "datatype": "FP32", "data": [5.0]}]}
    r = infer(client, admin_headers, name, missing)
    assert r.status_code == 400 and r.json()["code"] == "MISSING_INPUT"
    assert "width, seeds, ripe" in r.json()["detail"]
    typed = {"inputs": [{"name": "m", "shape": [1, 4], "datatype": "BYTES", "data": list("abcd")}]}
    assert infer(client, admin_headers, name, typed).json()["code"] == "TENSOR_DATATYPE_MISMATCH"
    good = [{"name": "m", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 0, 5, 6, 7, 1]}]
    unknown_output = {"inputs": good, "outputs": [{"name": "scores"}]}
    r = infer(client, admin_headers, name, unknown_output)
    assert r.status_code == 400 and r.json()["code"] == "UNKNOWN_OUTPUT"
    schema = {"inputs": [{"name": "m", "shape": [1], "datatype": "FP128", "data": [1]}]}
    assert infer(client, admin_headers, name, schema).status_code == 400
    rows = 501  # MAX_PREDICT_RECORDS=500 in the test settings
    too_many = {"inputs": [{"name": "m", "shape": [rows, 4], "datatype": "FP32", "data": []}]}
    r = infer(client, admin_headers, name, too_many)
    assert r.status_code == 413 and r.json()["code"] == "TOO_MANY_RECORDS"


def test_partition_parameter_on_a_partitioned_model(
    client,
    admin_headers,
    trained_rooms,
) -> None:
    name, version, frame = trained_rooms
    rows = frame[frame.room == "r1"].head(6)
    expected = predict(
        client, admin_headers, name, rows[["hour", "co2"]].to_dict("records"), partition="r1"
    )
    body = {
        "parameters": {"partition": "r1"},
        "inputs": [
            {"name": "hour", "shape": [6], "datatype": "INT64", "data": rows["hour"].tolist()},
            {"name": "co2", "shape": [6], "datatype": "FP64", "data": rows["co2"].tolist()},
        ],
    }
    r = infer(client, admin_headers, name, body)
    got = outputs(r)
    assert r.json()["parameters"] == {"partition": "r1"}
    assert got["label"] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [6],
        "data": expected["predictions"],
    }
    assert got["scores"]["datatype"] == "FP32" and got["scores"]["data"] == expected["scores"]
    other = outputs(infer(client, admin_headers, name, {**body, "parameters": {"partition": "r3"}}))
    assert other["scores"]["data"] != got["scores"]["data"]
    r = infer(client, admin_headers, name, {**body, "parameters": {"partition": "r9"}})
    assert r.status_code == 404 and r.json()["code"] == "PARTITION_NOT_FOUND"
    r = infer(client, admin_headers, name, {"inputs": body["inputs"]}, version=version)
    assert r.status_code == 400 and r.json()["code"] == "PARTITION_REQUIRED"
    meta = client.get(f"/v2/models/{name}", headers=admin_headers).json()
    assert [i["name"] for i in meta["inputs"]] == ["hour", "co2"]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "INT64", "shape": [-1]},
        {"name": "scores", "datatype": "FP32", "shape": [-1]},
    ]


def test_regression_and_alias_through_the_sklearn_fallback(client, admin_headers) -> None:
    import skops.io as sio
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    name = f"v2reg-{secrets.token_hex(3)}"
    for seed, alias in ((0, "champion"), (1, "challenger")):
        model = RandomForestRegressor(n_estimators=5, random_state=seed).fit(X[:300], y[:300])
        r = upload(client, admin_headers, name, sio.dumps(model), filename="m.skops", alias=alias)
        assert r.status_code == 201, r.text
    rows = X[300:304]
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [4, 10],
                "datatype": "FP64",
                "data": rows.to_numpy().tolist(),
            }
        ]
    }
    for alias, version in ((None, 1), ("challenger", 2)):
        extra = {"alias": alias} if alias else {}
        expected = predict(client, admin_headers, name, rows.to_dict("records"), **extra)
        sent = {**body, "parameters": extra} if alias else body
        r = infer(client, admin_headers, name, sent)
        assert r.json()["model_version"] == str(version)
        assert outputs(r)["predictions"] == {
            "name": "predictions",
            "datatype": "FP64",
            "shape": [4],
            "data": expected["predictions"],
        }
    meta = client.get(f"/v2/models/{name}/versions/2", headers=admin_headers).json()
    assert meta["platform"] == "sklearn_skops" and meta["versions"] == ["1", "2"]
    assert [i["name"] for i in meta["inputs"]] == list(X.columns)


def test_onnx_without_feature_names_is_served_raw(client, admin_headers) -> None:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    onx = to_onnx(model, X[:1], options={id(model): {"zipmap": False}}).SerializeToString()
    name = f"v2raw-{secrets.token_hex(3)}"
    assert upload(client, admin_headers, name, onx).status_code == 201
    meta = client.get(f"/v2/models/{name}", headers=admin_headers).json()
    assert meta["inputs"] == [{"name": "X", "datatype": "FP32", "shape": [-1, 3]}]
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    body = {
        "inputs": [{"name": "X", "shape": [2, 3], "datatype": "FP32", "data": X[:2].tolist()}],
        "outputs": [{"name": "probabilities"}],
    }
    got = outputs(infer(client, admin_headers, name, body))
    _, probabilities = ort.InferenceSession(onx).run(None, {"X": X[:2]})
    assert list(got) == ["probabilities"] and got["probabilities"]["shape"] == [2, 2]
    np.testing.assert_allclose(got["probabilities"]["data"], probabilities.ravel(), rtol=1e-6)
