"""Bodies of the prediction routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from shared.names import ALIAS_PATTERN, check_alias


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
