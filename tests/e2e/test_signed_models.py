"""Signed model versions: a row changed behind the platform's back (hashes fixed up and
all) fails verify and is refused by the loader; rotating the key keeps old versions."""

from __future__ import annotations

import hashlib
import json
import os
import secrets

import pytest

from shared.registry.signing import ModelSigner, key_id
from tests.e2e.conftest import upload

pytestmark = pytest.mark.e2e

RECORD = {"records": [{"f0": 5.1, "f1": 3.5, "f2": 1.4, "f3": 0.2}]}


def _tables():
    from shared.http import current_services

    storage = current_services().storage
    return storage.table("Models"), storage.container("models")


def _row(name: str, version: int) -> dict:
    models, _ = _tables()
    return dict(models.get_entity(name, f"{version:010d}"))


def _put_row(row: dict) -> None:
    from azure.data.tables import UpdateMode

    models, _ = _tables()
    models.upsert_entity(row, mode=UpdateMode.REPLACE)


@pytest.fixture()
def model(client, admin_headers, onnx_model) -> str:
    name = f"sig-{secrets.token_hex(3)}"
    features = [{"name": f"f{i}", "dtype": "number"} for i in range(4)]
    r = upload(client, admin_headers, name, onnx_model, features=features)
    assert r.status_code == 201, r.text
    assert _row(name, 1)["signature"].startswith("v1:")
    return name


def test_a_fresh_version_is_signed_and_verifies(client, admin_headers, model) -> None:
    info = client.get(f"/models/{model}/versions/1", headers=admin_headers).json()
    kid = key_id(os.environ["MODEL_SIGNING_KEY"].encode())
    assert info["signature"].startswith(f"v1:{kid}:")
    r = client.get(f"/models/{model}/versions/1/verify", headers=admin_headers).json()
    assert r["status"] == "valid" and r["signature"] == "valid"
    assert client.post(f"/predict/{model}", headers=admin_headers, json=RECORD).status_code == 200


def test_a_replaced_model_with_fixed_hashes_is_refused(client, admin_headers, model) -> None:
    """Storage-level tampering: new bytes in Blob and their hash in the row; no signature."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    evil = to_onnx(DecisionTreeClassifier(max_depth=1).fit(X, y), X[:1].astype("float32"))
    data = evil.SerializeToString()
    row = _row(model, 1)
    files = json.loads(row["files"])
    model_file = next(f for f in files if f["role"] == "model")
    _, container = _tables()
    container.upload_blob(model_file["path"].split("/", 1)[1], data, overwrite=True)
    model_file.update(sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))
    row["files"] = json.dumps(files)
    _put_row(row)

    r = client.get(f"/models/{model}/versions/1/verify", headers=admin_headers).json()
    assert all(f["status"] == "valid" for f in r["files"])  # the hashes alone say fine
    assert r["signature"] == "invalid" and r["status"] == "corrupt"
    r = client.post(f"/predict/{model}", headers=admin_headers, json={**RECORD, "version": 1})
    assert r.status_code == 409 and r.json()["code"] == "MODEL_SIGNATURE_INVALID"
    r = client.get(f"/models/{model}/versions/1/download", headers=admin_headers)
    assert r.status_code == 409


def test_a_version_signed_with_an_unknown_key_is_refused(
    client, admin_headers, model, services
) -> None:
    from shared.registry.integrity import version_content

    info = services.model_registry.get_version(model, 1)
    stranger = ModelSigner(secrets.token_bytes(32))
    row = _row(model, 1)
    row["signature"] = stranger.sign(version_content(info))
    _put_row(row)
    r = client.get(f"/models/{model}/versions/1/verify", headers=admin_headers).json()
    assert r["signature"] == "unknown_key" and r["status"] == "corrupt"
    r = client.post(f"/predict/{model}", headers=admin_headers, json={**RECORD, "version": 1})
    assert r.status_code == 409 and "does not hold" in r.json()["detail"]


def test_an_unsigned_version_is_refused_where_signatures_are_required(model, services) -> None:
    from shared.errors import AppError
    from shared.registry.store import ModelRegistry

    row = _row(model, 1)
    row["signature"] = ""
    _put_row(row)
    registry = services.model_registry
    info = registry.get_version(model, 1)
    registry.check_signature(info)  # locally, unsigned is allowed
    strict = ModelRegistry(
        registry.models, registry.aliases, registry.container, ModelSigner(None, required=True)
    )
    with pytest.raises(AppError) as refused:
        strict.check_signature(info)
    assert refused.value.code == "MODEL_SIGNATURE_INVALID"


def test_rotating_the_key_keeps_older_versions_verifiable(model, services) -> None:
    from shared.registry.store import ModelRegistry

    registry = services.model_registry
    info = registry.get_version(model, 1)
    old = os.environ["MODEL_SIGNING_KEY"]
    rotated = ModelSigner.from_secrets(secrets.token_urlsafe(48), old, required=True)
    after = ModelRegistry(registry.models, registry.aliases, registry.container, rotated)
    assert after.signature_status(info) == "valid"
    forgot = ModelSigner.from_secrets(secrets.token_urlsafe(48), None, required=True)
    without_old = ModelRegistry(registry.models, registry.aliases, registry.container, forgot)
    assert without_old.signature_status(info) == "unknown_key"
