"""Bodies of the prediction routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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
    prediction_id: str = Field(
        description="Server-made id of this prediction: send feedback to"
        " /predictions/{prediction_id}/feedback (also in the X-Prediction-ID header)."
    )
