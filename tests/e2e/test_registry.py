"""The model registry over HTTP against Azurite, with models made from sklearn's data."""

import concurrent.futures
import hashlib
import os
import pickle
import secrets
from datetime import timedelta
from urllib.parse import quote

import pytest

from tests.e2e.conftest import upload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(X, y)
    return to_onnx(model, X[:1].astype("float32")).SerializeToString()


@pytest.fixture(scope="module")
def skops_model() -> bytes:
    import skops.io as sio
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import RandomForestRegressor

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return sio.dumps(RandomForestRegressor(n_estimators=5, random_state=0).fit(X, y))


def name() -> str:
    return f"m-{secrets.token_hex(4)}"


@pytest.fixture()
def writer(make_user) -> dict:
    """A data scientist: may read and write the registry, nothing else."""
    return make_user(["user"])[3] | {}


@pytest.fixture()
def admin(admin_headers) -> dict:
    return admin_headers


def test_onnx_round_trip_is_byte_identical(client, admin, onnx_model) -> None:
    m = name()
    r = upload(
        client,
        admin,
        m,
        onnx_model,
        description="logreg",
        metrics={"accuracy": 0.95},
        tags={"team": "rooms"},
        artifacts=[("notes.txt", b"hello")],
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["version"] == 1 and created["format"] == "onnx"
    assert created["sha256"] == hashlib.sha256(onnx_model).hexdigest()
    assert created["size_bytes"] == len(onnx_model)
    assert created["model_path"] == f"models/{m}/1/model.onnx"
    assert created["artifact_paths"] == [f"models/{m}/1/artifacts/notes.txt"]
    assert r.headers["location"] == f"/models/{m}/versions/1"
    info = client.get(f"/models/{m}/versions/1", headers=admin).json()
    assert info["metrics"] == {"accuracy": 0.95} and info["tags"] == {"team": "rooms"}
    assert info["created_by"] == "admin" and info["description"] == "logreg"
    down = client.get(f"/models/{m}/versions/1/download", headers=admin)
    assert down.status_code == 200 and down.content == onnx_model
    art = client.get(
        f"/models/{m}/versions/1/download", headers=admin, params={"artifact": "notes.txt"}
    )
    assert art.content == b"hello"
    assert (
        client.get(
            f"/models/{m}/versions/1/download", headers=admin, params={"artifact": "../../x"}
        ).status_code
        == 404
    )
    assert client.get(f"/models/{m}/versions/1/verify", headers=admin).json()["status"] == "valid"
    listed = client.get("/models", headers=admin, params={"limit": 200}).json()["items"]
    assert any(x["name"] == m and x["latest_version"] == 1 for x in listed)


def test_skops_upload_reads_features_and_task(client, admin, skops_model) -> None:
    m = name()
    r = upload(client, admin, m, skops_model, filename="rf.skops")
    assert r.status_code == 201, r.text
    info = client.get(f"/models/{m}/versions/1", headers=admin).json()
    assert info["format"] == "skops" and info["task"] == "regression"
    assert [f["name"] for f in info["features"]][:3] == ["age", "sex", "bmi"]


def test_untrusted_skops_types_are_refused(client, admin) -> None:
    import numpy as np
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sneaky = FunctionTransformer(func=os.getcwd).fit(np.zeros((2, 2)))
    r = upload(client, admin, name(), sio.dumps(sneaky), filename="x.skops")
    assert r.status_code == 415 and r.json()["code"] == "UNTRUSTED_MODEL_TYPES"


def test_pickle_is_refused_even_when_renamed(client, admin) -> None:
    payload = pickle.dumps({"a": 1})
    for filename in ("model.pkl", "model.joblib", "model.onnx"):
        r = upload(client, admin, name(), payload, filename=filename)
        assert r.status_code == 415, filename
        assert r.json()["code"] == "UNSAFE_MODEL_FORMAT"
        assert "ONNX" in r.json()["detail"] and "skops" in r.json()["detail"]


def test_garbage_and_oversized_files(client, admin) -> None:
    r = upload(client, admin, name(), b"not an onnx model at all")
    assert r.status_code == 422
    big = b"\0" * 5_100_000  # MAX_MODEL_BYTES=5,000,000 in the test settings
    r = upload(client, admin, name(), big)
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert (
        client.post(f"/models/{name()}/versions", headers=admin, json={"x": 1}).status_code == 415
    )


def test_concurrent_uploads_get_distinct_consecutive_versions(client, admin, onnx_model) -> None:
    m = name()
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: upload(client, admin, m, onnx_model), range(10)))
    assert [r.status_code for r in results] == [201] * 10
    assert sorted(r.json()["version"] for r in results) == list(range(1, 11))
    detail = client.get(f"/models/{m}", headers=admin).json()
    assert detail["latest_version"] == 10
    assert sorted(v["version"] for v in detail["versions"]) == list(range(1, 11))


def test_idempotent_upload_returns_the_first_result(client, admin, onnx_model) -> None:
    m = name()
    headers = {**admin, "Idempotency-Key": "upload-42"}
    first = upload(client, headers, m, onnx_model)
    again = upload(client, headers, m, onnx_model)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert client.get(f"/models/{m}", headers=admin).json()["latest_version"] == 1


def test_corruption_is_detected_by_verify_download_and_loader(
    client, admin, onnx_model, services
) -> None:

    m = name()
    upload(client, admin, m, onnx_model)
    blob = services.storage.container("models").get_blob_client(f"{m}/1/model.onnx")
    blob.upload_blob(onnx_model[:-10] + b"0123456789", overwrite=True)
    report = client.get(f"/models/{m}/versions/1/verify", headers=admin).json()
    assert report["status"] == "corrupt" and report["files"][0]["status"] == "corrupt"
    r = client.get(f"/models/{m}/versions/1/download", headers=admin)
    assert r.status_code == 409 and r.json()["code"] == "MODEL_INTEGRITY_FAILED"
    with pytest.raises(Exception) as err:
        services.model_loader.load(m, version=1)
    assert getattr(err.value, "code", None) == "MODEL_INTEGRITY_FAILED"


def test_loader_caches_a_verified_model(client, admin, onnx_model, services) -> None:

    m = name()
    upload(client, admin, m, onnx_model, alias="champion")
    loader = services.model_loader
    first = loader.load(m)
    assert first.version == 1 and first.format == "onnx"
    assert loader.load(m) is first
    assert first.model.get_inputs()[0].shape[-1] == 30


def test_alias_move_rollback_and_audit(client, admin, onnx_model) -> None:
    m = name()
    for _ in range(2):
        upload(client, admin, m, onnx_model)
    assert (
        client.put(f"/models/{m}/aliases/champion", headers=admin, json={"version": 1}).status_code
        == 200
    )
    moved = client.put(f"/models/{m}/aliases/champion", headers=admin, json={"version": 2})
    assert moved.json()["version"] == 2 and moved.json()["previous_version"] == 1
    assert client.get(f"/models/{m}/aliases/champion", headers=admin).json()["version"] == 2
    back = client.put(f"/models/{m}/aliases/champion", headers=admin, json={"version": 1})
    assert back.json()["previous_version"] == 2
    assert client.get(f"/models/{m}", headers=admin).json()["aliases"] == {"champion": 1}
    assert (
        client.put(f"/models/{m}/aliases/champion", headers=admin, json={"version": 9}).status_code
        == 404
    )
    assert (
        client.put(
            f"/models/{m}/aliases/Bad..Alias", headers=admin, json={"version": 1}
        ).status_code
        == 422
    )
    audit = client.get("/audit", headers=admin, params={"limit": 200}).json()["items"]
    moves = [e for e in audit if e["path"] == f"/models/{m}/aliases/champion"]
    assert len(moves) >= 3
    assert client.delete(f"/models/{m}/aliases/champion", headers=admin).status_code == 204
    assert client.get(f"/models/{m}/aliases/champion", headers=admin).status_code == 404


def test_compare_picks_the_best_per_metric(client, admin, onnx_model) -> None:
    m = name()
    upload(client, admin, m, onnx_model, metrics={"rmse": 3.0, "r2": 0.5})
    upload(client, admin, m, onnx_model, metrics={"rmse": 2.0, "r2": 0.4})
    client.put(f"/models/{m}/aliases/champion", headers=admin, json={"version": 1})
    r = client.post("/models/compare", headers=admin, json={"models": [f"{m}@champion", f"{m}@2"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["best"]["rmse"]["ref"] == f"{m}@2" and not body["best"]["rmse"]["higher_is_better"]
    assert body["best"]["r2"]["ref"] == f"{m}@champion"
    assert body["models"][0]["version"] == 1
    assert (
        client.post("/models/compare", headers=admin, json={"models": [f"{m}@7"]}).status_code
        == 404
    )


def test_decision_flow(client, admin, onnx_model) -> None:
    m = name()
    upload(client, admin, m, onnx_model)
    upload(client, admin, m, onnx_model)
    r = client.post(
        f"/models/{m}/versions/2/decision",
        headers=admin,
        json={"decision": "reject", "justification": "worse on rooms 3-5"},
    )
    assert r.status_code == 200 and r.json()["decision"]["decision"] == "reject"
    assert client.get(f"/models/{m}/aliases/champion", headers=admin).status_code == 404
    r = client.post(
        f"/models/{m}/versions/1/decision",
        headers=admin,
        json={"decision": "approve", "justification": "better recall"},
    )
    assert r.json()["decision"]["decided_by"] == "admin"
    assert client.get(f"/models/{m}/aliases/champion", headers=admin).json()["version"] == 1
    assert (
        client.post(
            f"/models/{m}/versions/1/decision",
            headers=admin,
            json={"decision": "maybe", "justification": "x"},
        ).status_code
        == 422
    )


def test_delete_refuses_aliased_versions_and_never_reuses_numbers(
    client, admin, onnx_model, services
) -> None:

    m = name()
    upload(client, admin, m, onnx_model, alias="champion")
    upload(client, admin, m, onnx_model)
    r = client.delete(f"/models/{m}/versions/1", headers=admin)
    assert r.status_code == 409 and r.json()["aliases"] == ["champion"]
    assert client.delete(f"/models/{m}/versions/2", headers=admin).status_code == 204
    assert client.get(f"/models/{m}/versions/2", headers=admin).status_code == 404
    assert client.delete(f"/models/{m}/versions/1?force=true", headers=admin).status_code == 204
    blobs = list(services.storage.container("models").list_blobs(name_starts_with=f"{m}/"))
    assert blobs == []
    assert client.get(f"/models/{m}", headers=admin).status_code == 404
    assert upload(client, admin, m, onnx_model).json()["version"] == 3
    assert client.delete(f"/models/{m}", headers=admin).status_code == 204
    assert client.get(f"/models/{m}", headers=admin).status_code == 404
    assert upload(client, admin, m, onnx_model).json()["version"] == 4


def test_orphan_blobs_are_swept(client, admin, onnx_model, services) -> None:

    m = name()
    upload(client, admin, m, onnx_model)
    container = services.storage.container("models")
    container.upload_blob(f"{m}/7/model.onnx", b"left by a crash")
    removed = services.model_registry.sweep_orphans(older_than=timedelta(0))
    assert removed >= 1
    names = [b.name for b in container.list_blobs(name_starts_with=f"{m}/")]
    assert names == [f"{m}/1/model.onnx"]


@pytest.mark.parametrize("bad", ["..", "a..b", "UPPER", "caf\u00e9", "x" * 70, "-lead", "dot."])
def test_bad_names_are_refused_before_storage(client, admin, onnx_model, bad) -> None:
    r = upload(client, admin, bad, onnx_model)
    assert r.status_code in (404, 422), r.text
    # Dots percent-encoded: a client would otherwise resolve "/models/.." to "/" (the
    # dashboard) and the name would never reach the route.
    encoded = quote(bad, safe="").replace(".", "%2E")
    assert client.get(f"/models/{encoded}", headers=admin).status_code in (404, 422)


def test_roles_on_registry_routes(client, make_user, admin, onnx_model) -> None:
    m = name()
    upload(client, admin, m, onnx_model)
    _, _, _, reader = make_user(["user"])
    assert client.get(f"/models/{m}", headers=reader).status_code == 200
    r = upload(client, reader, m, onnx_model)
    assert r.status_code == 403 and r.json()["missing_scope"] == "models:write"
    assert client.delete(f"/models/{m}", headers=reader).status_code == 403
    assert client.get(f"/models/{m}").status_code == 401
