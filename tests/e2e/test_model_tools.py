"""Transform (a version's preprocessed features) and quantize (a smaller ONNX version),
over HTTP against Azurite, checked against the models themselves."""

from __future__ import annotations

import secrets

import httpx
import numpy as np
import onnx
import pytest
import skops.io as sio
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.conftest import customers, features_of, put_dataset, rooms, upload, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(host) -> dict[str, tuple[str, int]]:
    """A logistic regression (scaled + one-hot) and a per-room anomaly model."""
    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    suffix = secrets.token_hex(3)
    clf, per_room = f"tools-clf-{suffix}", f"tools-rooms-{suffix}"
    put_dataset(client, headers, clf, customers(3, 600))
    put_dataset(client, headers, per_room, rooms(4, ["r0", "r1"]))
    specs = {
        clf: {"dataset": clf, "target": "label", "algorithm": "logistic_regression"},
        per_room: {
            "dataset": per_room,
            "algorithm": "isolation_forest",
            "partition_by": "room",
            "params": {"n_estimators": 10},
        },
    }
    for name, spec in specs.items():
        r = client.put(f"/train/specs/{name}", headers=headers, json={**spec, "enabled": False})
        assert r.status_code == 201, r.text
    r = client.post("/train", headers=headers, json={"specs": list(specs)})
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    versions = {res["model"]: res["version"] for res in job["results"]}
    return {"clf": (clf, versions[clf]), "rooms": (per_room, versions[per_room])}


def _skops(client, headers, name: str, version: int):
    r = client.get(f"/models/{name}/versions/{version}/download", headers=headers)
    assert r.status_code == 200, r.text
    return sio.loads(r.content, trusted=sio.get_untrusted_types(data=r.content))


def _versions(client, headers, name: str) -> list[int]:
    r = client.get(f"/models/{name}", headers=headers)
    assert r.status_code == 200, r.text
    return sorted(v["version"] for v in r.json()["versions"])


# --- transform ----------------------------------------------------------------------------


def test_transform_matches_the_skops_pipeline(client, admin_headers, trained) -> None:
    from shared.ml.pipeline import prepare_frame

    name, version = trained["clf"]
    frame = customers(9, 25)
    records = features_of(frame)
    records[0]["x"] = None  # imputed by the pipeline, as in training
    r = client.post(
        f"/models/{name}/versions/{version}/transform",
        headers=admin_headers,
        json={"records": [{**rec, "customer_id": i} for i, rec in enumerate(records)]},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    pipeline = _skops(client, admin_headers, name, version)
    info = client.get(f"/models/{name}/versions/{version}", headers=admin_headers).json()
    import pandas as pd

    expected = pipeline[:-1].transform(prepare_frame(pd.DataFrame(records), info["features"]))
    assert body["columns"] == [str(c) for c in pipeline[:-1].get_feature_names_out()]
    assert any(c.endswith("color_red") for c in body["columns"])  # one-hot encoded
    np.testing.assert_allclose(np.asarray(body["rows"], dtype=float), expected, atol=1e-9)
    assert body["ignored_fields"] == ["customer_id"]


def test_transform_of_a_partition_uses_its_pipeline(client, admin_headers, trained) -> None:
    name, version = trained["rooms"]
    records = [{"hour": 3, "co2": 520.0}, {"hour": 20, "co2": None}]
    url = f"/models/{name}/versions/{version}/transform"
    r = client.post(url, headers=admin_headers, json={"records": records, "partition": "r1"})
    assert r.status_code == 200, r.text
    assert len(r.json()["rows"]) == 2 and r.json()["partition"] == "r1"
    assert all(v is not None for v in r.json()["rows"][1])  # the gap was imputed
    r = client.post(url, headers=admin_headers, json={"records": records})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    r = client.post(url, headers=admin_headers, json={"records": records, "partition": "r9"})
    assert r.status_code == 404 and r.json()["code"] == "PARTITION_NOT_FOUND"


def test_transform_errors(client, admin_headers, trained, make_user) -> None:
    name, version = trained["clf"]
    url = f"/models/{name}/versions/{version}/transform"
    r = client.post(url, headers=admin_headers, json={"records": [{"x": "high"}]})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"][:2] == ["records", 0]
    one = {"records": features_of(customers(1, 1))}
    r = client.post(f"/models/{name}/versions/999/transform", headers=admin_headers, json=one)
    assert r.status_code == 404, r.text
    r = client.post(url, json={"records": [{"x": 1}]})
    assert r.status_code == 401
    nobody = make_user([])[3]
    assert client.post(url, headers=nobody, json={"records": [{"x": 1}]}).status_code == 403


# --- quantize -----------------------------------------------------------------------------


def mlp(n_features: int = 8, hidden: int = 256, seed: int = 0) -> bytes:
    """A small float32 MLP regressor (MatMul + Add + Relu) with one [n, k] input."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.3, (n_features, hidden)).astype(np.float32)
    b1 = rng.normal(0, 0.1, hidden).astype(np.float32)
    w2 = rng.normal(0, 0.3, (hidden, 1)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["X", "W1"], ["h"]),
        helper.make_node("Add", ["h", "B1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "W2"], ["variable"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, [None, 1])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (b1, "B1"), (w2, "W2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_quantize_an_mlp_makes_a_smaller_close_version(client, admin_headers) -> None:
    name = f"tools-mlp-{secrets.token_hex(3)}"
    features = [{"name": f"f{i}", "dtype": "number"} for i in range(8)]
    source = mlp()
    r = upload(client, admin_headers, name, source, features=features, task="regression")
    assert r.status_code == 201, r.text
    rng = np.random.default_rng(1)
    records = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in rng.normal(size=(50, 8))]
    r = client.post(
        f"/models/{name}/versions/1/quantize", headers=admin_headers, json={"records": records}
    )
    assert r.status_code == 201, r.text
    report = r.json()
    assert r.headers["location"] == f"/models/{name}/versions/2"
    assert report["source"]["version"] == 1 and report["quantized"]["version"] == 2
    assert report["source"]["size_bytes"] == len(source)
    assert report["size_ratio"] < 0.5  # int8 weights: about a quarter of float32
    assert "MatMulInteger" in report["quantized_operators"]
    assert report["rows_compared"] == 50 and report["label_agreement"] is None
    # The quantized version serves, close to the source.
    answers = [
        client.post(
            f"/predict/{name}", headers=admin_headers, json={"records": records, "version": v}
        ).json()["predictions"]
        for v in (1, 2)
    ]
    diff = np.max(np.abs(np.ravel(answers[0]) - np.ravel(answers[1])))
    assert 0 < diff <= report["max_abs_diff"] + 1e-6
    version = client.get(f"/models/{name}/versions/2", headers=admin_headers).json()
    assert version["params"]["quantized_from"] == 1 and version["format"] == "onnx"


def test_quantize_refuses_a_tree_ensemble_and_registers_nothing(
    client, admin_headers, trained
) -> None:
    for key in ("clf", "rooms"):
        name, version = trained[key]
        before = _versions(client, admin_headers, name)
        r = client.post(
            f"/models/{name}/versions/{version}/quantize", headers=admin_headers, json={}
        )
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "QUANTIZATION_NOT_APPLICABLE"
        assert _versions(client, admin_headers, name) == before


def test_quantize_needs_models_write(client, trained, make_user) -> None:
    name, version = trained["clf"]
    reader = make_user(["user"])[3]
    r = client.post(f"/models/{name}/versions/{version}/quantize", headers=reader, json={})
    assert r.status_code == 403
