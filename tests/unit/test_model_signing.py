"""The model signer: what it signs, key ids, rotation, and what it refuses."""

from __future__ import annotations

import secrets

import pytest

from shared.registry.signing import ModelSigner, key_id, signed_content

FILES = [{"path": "models/m/1/model.onnx", "sha256": "a" * 64, "size_bytes": 10, "role": "model"}]


def content(**change) -> bytes:
    args = {"name": "m", "version": 1, "model_format": "onnx", "task": None, "features": None}
    args |= change
    return signed_content(
        files=change.pop("files", FILES), **{k: args[k] for k in args if k != "files"}
    )


def test_every_signed_field_changes_the_content() -> None:
    base = content()
    for change in (
        {"name": "n"},
        {"version": 2},
        {"model_format": "skops"},
        {"task": "regression"},
        {"features": [{"name": "x", "dtype": "number"}]},
        {"files": [{**FILES[0], "sha256": "b" * 64}]},
    ):
        assert content(**change) != base, change
    # File order does not matter: the files are sorted by path.
    two = [*FILES, {**FILES[0], "path": "models/m/1/artifacts/a.txt", "role": "artifact"}]
    assert content(files=two) == content(files=list(reversed(two)))


def test_sign_check_and_rotation() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    signature = ModelSigner(old).sign(content())
    assert signature.startswith(f"v1:{key_id(old)}:")
    assert ModelSigner(old).check(content(), signature) == "valid"
    assert ModelSigner(old).check(content(version=2), signature) == "invalid"
    assert ModelSigner(new, (old,)).check(content(), signature) == "valid"
    assert ModelSigner(new).check(content(), signature) == "unknown_key"
    assert ModelSigner(new).check(content(), None) == "unsigned"
    for garbage in ("v2:x:y", "v1::", "nonsense", f"v1:{key_id(old)}:!!!"):
        assert ModelSigner(old).check(content(), garbage) == "invalid"


def test_what_may_be_loaded() -> None:
    relaxed, strict = ModelSigner(None), ModelSigner(None, required=True)
    assert relaxed.acceptable("unsigned") and not strict.acceptable("unsigned")
    for status in ("invalid", "unknown_key"):
        assert not relaxed.acceptable(status) and not strict.acceptable(status)
    assert relaxed.sign(b"x") is None


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError):
        ModelSigner.from_secrets("short", None, required=False)
    with pytest.raises(ValueError):
        ModelSigner.from_secrets(secrets.token_urlsafe(48), "ok-but-short", required=False)
