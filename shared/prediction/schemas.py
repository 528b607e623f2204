"""Bodies of the prediction routes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.names import ALIAS_PATTERN


class PredictRequest(BaseModel):
    records: list[dict[str, Any]] = Field(min_length=1, description="One object per row.")
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    partition: str | int | None = Field(default=None, description="e.g. the room id")
    return_probabilities: bool = False


class PredictResponse(BaseModel):
    model: str
    version: int
    partition: str | None = None
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None
    scores: list[float] | None = None
    ignored_fields: list[str] = Field(
        default_factory=list, description="Fields sent that are not features (ignored)."
    )
    variant: str | None = Field(default=None, description="The alias that answered.")
    request_id: str


class TransformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] = Field(min_length=1, description="One object per row.")
    partition: str | int | None = Field(
        default=None, description="Partitioned models: the partition whose pipeline runs."
    )


class TransformResult(BaseModel):
    model: str
    version: int
    partition: str | None = None
    columns: list[str] = Field(description="The estimator's input columns, in order.")
    rows: list[list[float | None]] = Field(description="One row per record; null = NaN.")
    ignored_fields: list[str] = Field(default_factory=list)


class QuantizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight_type: Literal["int8", "uint8"] = "int8"
    records: list[dict[str, Any]] | None = Field(
        default=None,
        min_length=1,
        max_length=5_000,
        description="Rows to compare the outputs on; default: rows drawn from the profile.",
    )
    sample_rows: int = Field(default=1_000, ge=10, le=5_000)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    description: str | None = Field(default=None, max_length=2000)


class GraphStats(BaseModel):
    version: int
    size_bytes: int
    latency_ms: float = Field(description="Median time to score the comparison rows.")


class QuantizeResult(BaseModel):
    model: str
    source: GraphStats
    quantized: GraphStats
    size_ratio: float = Field(description="quantized / source")
    latency_ratio: float = Field(description="quantized / source")
    rows_compared: int
    max_abs_diff: float = Field(description="Largest change of a score/probability/value.")
    label_agreement: float | None = Field(
        description="Share of rows with the same label (classification and anomaly)."
    )
    quantized_operators: list[str]
