"""Signed model versions: an HMAC over what a version is, by the platform's signing key.

The SHA-256 of every file proves the bytes match the row; the signature proves the row
is the platform's: someone able to write Blob *and* Table (a leaked storage key, a
mistaken role assignment) can replace a model and fix its hashes, but cannot sign.

What is signed (canonical JSON, sorted keys): the model name and version, the format, the
task and feature schema, and every recorded file (path, SHA-256, size, role, format). A
partitioned version's partition files are hashed in its manifest, whose own hash is
recorded, so they are covered too.

Signature text: ``v1:{key id}:{base64url HMAC-SHA256}``; the key id is the first 12 hex
digits of the key's SHA-256. The current key signs; the current and every previous key
(``model-signing-key`` and ``model-signing-keys-previous`` in Key Vault, comma-separated,
or ``MODEL_SIGNING_KEY`` / ``MODEL_SIGNING_KEYS_PREVIOUS`` locally) verify, so rotating the
key keeps older versions verifiable: add the old key to the previous list, then replace
the current one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.errors import AppError

SignatureStatus = Literal["valid", "invalid", "unknown_key", "unsigned"]
VERSION = "v1"
MIN_KEY_BYTES = 32


class ModelSignatureInvalid(AppError):
    status, code, title = 409, "MODEL_SIGNATURE_INVALID", "Model signature check failed"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:12]


def signed_content(
    name: str,
    version: int,
    model_format: str,
    task: str | None,
    features: Sequence[dict[str, Any]] | None,
    files: Sequence[dict[str, Any]],
) -> bytes:
    document = {
        "name": name,
        "version": version,
        "format": model_format,
        "task": task,
        "features": list(features) if features is not None else None,
        "files": sorted(
            (
                {
                    "path": f["path"],
                    "sha256": f["sha256"],
                    "size_bytes": f["size_bytes"],
                    "role": f.get("role"),
                    "format": f.get("format"),
                }
                for f in files
            ),
            key=lambda f: f["path"],
        ),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ModelSigner:
    """Signs with ``current``; verifies with it and ``previous``."""

    current: bytes | None
    previous: tuple[bytes, ...] = ()
    required: bool = False  # refuse unsigned versions (Azure mode)

    @classmethod
    def from_secrets(cls, current: str | None, previous: str | None, required: bool) -> ModelSigner:
        keys = [k.strip().encode() for k in (previous or "").split(",") if k.strip()]
        signer = cls(current.encode() if current else None, tuple(keys), required)
        for key in ([signer.current] if signer.current else []) + keys:
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"A model signing key must be at least {MIN_KEY_BYTES} bytes.")
        return signer

    def sign(self, content: bytes) -> str | None:
        if self.current is None:
            return None
        mac = hmac.new(self.current, content, hashlib.sha256).digest()
        return f"{VERSION}:{key_id(self.current)}:{base64.urlsafe_b64encode(mac).decode()}"

    def check(self, content: bytes, signature: str | None) -> SignatureStatus:
        if not signature:
            return "unsigned"
        version, _, rest = signature.partition(":")
        kid, _, encoded = rest.partition(":")
        if version != VERSION or not kid or not encoded:
            return "invalid"
        keys = {key_id(k): k for k in (self.current, *self.previous) if k is not None}
        key = keys.get(kid)
        if key is None:
            return "unknown_key"
        expected = hmac.new(key, content, hashlib.sha256).digest()
        try:
            given = base64.urlsafe_b64decode(encoded.encode())
        except ValueError:
            return "invalid"
        return "valid" if hmac.compare_digest(expected, given) else "invalid"

    def acceptable(self, status: SignatureStatus) -> bool:
        """Whether a version with this signature status may be loaded."""
        return status == "valid" or (status == "unsigned" and not self.required)
