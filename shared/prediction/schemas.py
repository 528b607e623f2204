"""Bodies of the prediction routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from shared.names import ALIAS_PATTERN, check_alias


class PredictOptions(BaseModel):
    """What every body form of POST /predict/{model} may carry beside its rows."""

    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    partition: str | int | None = Field(default=None, description="e.g. the room id")
    return_probabilities: bool = False


class PredictRequest(PredictOptions):
    records: list[dict[str, Any]] = Field(min_length=1, description="One object per row.")


class PredictColumnsRequest(PredictOptions):
    columns: list[str] = Field(min_length=1, description="The feature names, once each.")
    data: list[list[Any]] = Field(
        min_length=1, description="One array per row, values in the order of `columns`."
    )


class DataframeSplit(BaseModel):
    columns: list[str] = Field(min_length=1)
    data: list[list[Any]] = Field(min_length=1)
    index: list[Any] | None = Field(default=None, description="Ignored (pandas sends it).")


class PredictDataframeSplitRequest(PredictOptions):
    dataframe_split: DataframeSplit = Field(
        description="MLflow's split orient (pandas `to_dict(orient='split')`)."
    )


class PredictDataframeRecordsRequest(PredictOptions):
    dataframe_records: list[dict[str, Any]] = Field(
        min_length=1, description="MLflow's records orient: the same as `records`."
    )


class PredictInstancesRequest(PredictOptions):
    instances: list[dict[str, Any] | list[Any]] = Field(
        min_length=1, description="MLflow's `instances`: one object (or array) per row."
    )


class PredictInputsRequest(PredictOptions):
    inputs: dict[str, list[Any]] | list[dict[str, Any] | list[Any]] = Field(
        description="MLflow's `inputs`: one array per feature (`{feature: [...]}`), or rows."
    )


class PredictBody(
    RootModel[
        PredictRequest
        | PredictColumnsRequest
        | PredictDataframeSplitRequest
        | PredictDataframeRecordsRequest
        | PredictInstancesRequest
        | PredictInputsRequest
    ]
):
    """The rows in one form: records (one object per row), columnar (`columns` + `data`),
    or MLflow's `dataframe_split` / `dataframe_records` / `instances` / `inputs`. Columnar
    bodies refuse columns that are not features; records ignore such fields and name them
    in `ignored_fields`.
    (The OpenAPI document's schema: the route parses bodies with its own fast decoder.)"""


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
    prediction_id: str = Field(
        description="Server-made id of this prediction: send feedback to"
        " /predictions/{prediction_id}/feedback (also in the X-Prediction-ID header)."
    )


class TrafficBody(BaseModel):
    """Weights per alias, e.g. {"champion": 90, "challenger": 10}, and an optional shadow."""

    weights: dict[str, int] = Field(default_factory=dict)
    shadow: str | None = Field(default=None, pattern=ALIAS_PATTERN)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "weights" not in data:
            data = dict(data)
            shadow = data.pop("shadow", None)
            return {"weights": data, "shadow": shadow}
        return data

    @model_validator(mode="after")
    def _valid(self) -> TrafficBody:
        for alias, weight in self.weights.items():
            check_alias(alias)
            if not 0 <= weight <= 100_000:
                raise ValueError(f"weight of {alias} must be between 0 and 100000")
        if self.weights and sum(self.weights.values()) <= 0:
            raise ValueError("the weights must add up to more than 0")
        if not self.weights and not self.shadow:
            raise ValueError("give weights per alias, a shadow alias, or both")
        return self


class Traffic(TrafficBody):
    model: str
    updated_by: str | None = None


class VariantResult(BaseModel):
    variant: str
    version: int
    role: str  # "primary" or "shadow"
    requests: int
    records: int
    errors: int
    mean_latency_ms: float | None
    max_latency_ms: float | None


class ShadowAgreement(BaseModel):
    shadow: str
    compared_records: int
    agreement: float | None


class FeedbackMetrics(BaseModel):
    version: int
    feedback_count: int
    accuracy: float | None = None
    mae: float | None = None
    rmse: float | None = None


class AbResults(BaseModel):
    model: str
    traffic: Traffic | None
    variants: list[VariantResult]
    shadow: list[ShadowAgreement]
    feedback: list[FeedbackMetrics]


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


class EntityIndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63, description="The feature dataset.")
    key: str = Field(min_length=1, max_length=200, description="The entity id column.")
    order_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Keep each entity's row with the largest value (e.g. a timestamp);"
        " default: the last row in file order.",
    )


class EntityIndexInfo(BaseModel):
    model: str
    dataset: str
    dataset_sha256: str
    key: str
    order_by: str | None
    entities: int
    rows_read: int
    buckets: int
    build: str
    built_at: datetime
    built_by: str


class EntityPredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str | int] = Field(min_length=1, max_length=1000)
    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    return_probabilities: bool = False
    include_features: bool = Field(default=False, description="Echo the features used.")


class EntityPrediction(BaseModel):
    id: str
    prediction: Any
    probabilities: list[float] | None = None
    score: float | None = None
    partition: str | None = None
    features: dict[str, Any] | None = None


class EntityPredictResponse(BaseModel):
    model: str
    versions: list[int] = Field(description="The version(s) that answered.")
    classes: list[Any] | None = None
    results: list[EntityPrediction]
    request_id: str


class EntityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    return_probabilities: bool = False
    include_features: bool = False
