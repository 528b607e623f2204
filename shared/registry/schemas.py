"""Bodies of the registry routes (also the OpenAPI schemas)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.names import ALIAS_PATTERN


class FeatureSpec(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    dtype: str = Field(default="number", max_length=40)


class Lineage(BaseModel):
    job_id: str | None = None
    dataset: str | None = None
    dataset_sha256: str | None = None


class StoredFile(BaseModel):
    path: str
    sha256: str
    size_bytes: int
    role: Literal["model", "artifact", "serving", "partition"] = "artifact"
    format: str | None = None
    # Where the bytes are when they are not the blob ``path`` names: a partition file a
    # training unit wrote into a segment of its unit's pack
    # (``.../packs/u000003-000000.bin``), from ``offset``. Never shown: the file's
    # identity stays ``path``.
    pack: str | None = Field(default=None, exclude=True)
    offset: int | None = Field(default=None, exclude=True, ge=0)
    # A packed file may be stored compressed (``shared.registry.compression``):
    # ``stored_bytes`` of ``encoding`` at ``offset``; sha256 and size are the file's own.
    encoding: Literal["zstd"] | None = Field(default=None, exclude=True)
    stored_bytes: int | None = Field(default=None, exclude=True, ge=0)


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject", "defer"]
    justification: str = Field(min_length=1, max_length=2000)


class Decision(DecisionBody):
    decided_by: str
    decided_at: datetime


class Promotion(BaseModel):
    """Why a trained version was or was not made champion."""

    promoted: bool
    rule: Literal["if_better", "always", "manual"]
    reason: str
    metric: str | None = None
    higher_is_better: bool | None = None
    candidate_value: float | None = None
    champion_version: int | None = None
    champion_value: float | None = None


class VersionMetadata(BaseModel):
    """What an upload (multipart fields) or a training run says about a new version."""

    description: str = Field(default="", max_length=2000)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=100)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)
    params: dict[str, Any] = Field(default_factory=dict, max_length=200)
    features: list[FeatureSpec] | None = Field(default=None, max_length=5000)
    task: Literal["classification", "regression", "anomaly"] | None = None
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    lineage: Lineage | None = None
    promotion: Promotion | None = None

    @field_validator("metrics", "tags", "features", "params", mode="before")
    @classmethod
    def _json_text(cls, value: Any) -> Any:
        # Multipart fields arrive as text holding JSON.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else None
            except ValueError:
                raise ValueError("must be valid JSON") from None
        return value


class VersionCreated(BaseModel):
    name: str
    version: int
    model_path: str
    artifact_paths: list[str]
    sha256: str
    size_bytes: int
    format: str
    status: str


class VersionInfo(VersionCreated):
    created_at: datetime
    created_by: str
    description: str
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    features: list[FeatureSpec] | None
    task: str | None
    aliases: list[str]
    lineage: Lineage | None
    decision: Decision | None
    promotion: Promotion | None = None
    signature: str | None = Field(
        default=None, description="v1:{key id}:{HMAC}: the platform's signature of this row."
    )
    files: list[StoredFile]


class VersionBrief(BaseModel):
    version: int
    created_at: datetime
    format: str
    status: str
    metrics: dict[str, float]
    aliases: list[str]


class VersionSummary(VersionBrief):
    created_by: str
    description: str
    tags: dict[str, str]
    task: str | None
    promotion: dict[str, Any] | None = Field(
        default=None, description="Why training did or did not promote it (see VersionInfo)."
    )


class VersionPage(BaseModel):
    items: list[VersionSummary]
    continuation_token: str | None = None


class VersionQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    continuation_token: str | None = Field(default=None, max_length=4096)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN, description="Only this one.")
    tag: str | None = Field(
        default=None,
        max_length=300,
        pattern=r"^[^=]{1,128}(=.{0,256})?$",
        description="key or key=value; a page may then hold fewer than limit items.",
    )
    status: Literal["ready", "deleting"] = "ready"


class ModelSummary(BaseModel):
    name: str
    description: str
    latest_version: int | None
    aliases: dict[str, int]
    tags: dict[str, str]
    updated_at: datetime


class ModelDetail(ModelSummary):
    versions: list[VersionBrief]


class ModelPage(BaseModel):
    items: list[ModelSummary]
    continuation_token: str | None = None


class AliasBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)


class AliasInfo(BaseModel):
    name: str
    alias: str
    version: int
    previous_version: int | None
    updated_at: datetime
    updated_by: str


class CompareBody(BaseModel):
    models: list[str] = Field(
        min_length=1,
        max_length=20,
        description="name@version, name@alias, models:/name/version or models:/name@alias",
    )
    metrics: list[str] | None = Field(default=None, max_length=50)


class ComparedModel(BaseModel):
    ref: str
    name: str
    version: int
    metrics: dict[str, float | None]


class BestValue(BaseModel):
    ref: str
    value: float
    higher_is_better: bool


class CompareResult(BaseModel):
    models: list[ComparedModel]
    best: dict[str, BestValue]


class FileCheck(BaseModel):
    path: str
    status: Literal["valid", "corrupt", "missing"]
    expected_sha256: str
    actual_sha256: str | None
    expected_size: int
    actual_size: int | None


class VerifyResult(BaseModel):
    name: str
    version: int
    status: Literal["valid", "corrupt"]
    signature: Literal["valid", "invalid", "unknown_key", "unsigned"] = Field(
        description="unsigned is acceptable only where signatures are not required."
    )
    files: list[FileCheck]


class ForceQuery(BaseModel):
    force: bool = False


class DownloadQuery(BaseModel):
    artifact: str | None = Field(default=None, max_length=300)
