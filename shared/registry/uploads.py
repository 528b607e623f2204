"""Turning an uploaded model file into a registered version: format policy, inspection,
idempotency. Plain Python: the HTTP edge hands over bytes and form fields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pydantic import ValidationError

from shared.errors import Forbidden, ValidationFailed
from shared.idempotency import IdempotencyStore
from shared.identity.principal import Principal
from shared.registry.file_checks import check_model_file
from shared.registry.files import NewFile
from shared.registry.formats import PICKLE, detect_format, inspect_model, refuse_pickle
from shared.registry.schemas import FeatureSpec, VersionCreated, VersionMetadata
from shared.registry.store import ModelRegistry

METADATA_FIELDS = ("description", "metrics", "tags", "features", "alias", "task", "params")


@dataclass(frozen=True)
class UploadResult:
    version: VersionCreated
    replayed: bool


class ModelUploads:
    def __init__(
        self, registry: ModelRegistry, idempotency: IdempotencyStore, allow_pickle: bool
    ) -> None:
        self.registry = registry
        self.idempotency = idempotency
        self.allow_pickle = allow_pickle

    def upload(
        self,
        name: str,
        model: NewFile,
        artifacts: list[NewFile],
        fields: dict[str, str],
        principal: Principal,
        idempotency_key: str | None = None,
    ) -> UploadResult:
        try:
            meta = VersionMetadata.model_validate(
                {k: v for k, v in fields.items() if k in METADATA_FIELDS}
            )
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(
                exc, "The upload's fields are not valid."
            ) from None
        fmt = detect_format(model.filename, model.data)
        if fmt == PICKLE:
            if not self.allow_pickle:
                raise refuse_pickle()
            if not principal.is_admin:
                raise Forbidden("Only admins may upload pickle models.", code="ADMIN_REQUIRED")
        check_model_file(fmt, model.data)  # the whole file, before any loader reads it
        inspection = inspect_model(fmt, model.data)
        if meta.features is None and inspection.features is not None:
            meta.features = [FeatureSpec(**f.as_dict()) for f in inspection.features]
        meta.task = meta.task or inspection.task  # type: ignore[assignment]

        scope = f"upload:{name}:{principal.user_id}"
        if idempotency_key:
            earlier = self.idempotency.begin(
                scope, idempotency_key, _fingerprint(model, artifacts, fields)
            )
            if earlier is not None:
                return UploadResult(VersionCreated.model_validate(earlier), replayed=True)
        try:
            info = self.registry.register(
                name, fmt, model, artifacts, meta, created_by=principal.username
            )
        except Exception:
            if idempotency_key:
                self.idempotency.abandon(scope, idempotency_key)
            raise
        created = VersionCreated(**info.model_dump(include=set(VersionCreated.model_fields)))
        if idempotency_key:
            self.idempotency.complete(scope, idempotency_key, created.model_dump(mode="json"))
        return UploadResult(created, replayed=False)


def _fingerprint(model: NewFile, artifacts: list[NewFile], fields: dict[str, str]) -> str:
    """What makes two uploads "the same request" (multipart boundaries differ per retry)."""
    h = hashlib.sha256(model.data)
    for f in sorted(artifacts, key=lambda a: a.filename):
        h.update(f.filename.encode() + b"\0" + hashlib.sha256(f.data).digest())
    for key in sorted(fields):
        h.update(f"{key}={fields[key]}\0".encode())
    return h.hexdigest()
