"""The training API models: specs, the POST /train body, job queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.names import NAME_PATTERN

Algorithm = Literal[
    "random_forest",
    "gradient_boosting",
    "hist_gradient_boosting",
    "logistic_regression",
    "linear_regression",
    "ridge",
    "isolation_forest",
]


class TrainingSpecBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(pattern=NAME_PATTERN, description="Dataset name (see /datasets).")
    target: str | None = Field(
        default=None, max_length=200, description="Label column; null = anomaly detection."
    )
    features: list[str] | None = Field(
        default=None, max_length=2000, description="null = every column but target/partition."
    )
    task: Literal["classification", "regression", "anomaly"] | None = None
    algorithm: Algorithm
    params: dict[str, Any] = Field(default_factory=dict, max_length=50)
    partition_by: str | None = Field(
        default=None, max_length=200, description="One sub-model per value (e.g. per room)."
    )
    min_rows: int = Field(default=50, ge=10, le=10_000_000)
    enabled: bool = True
    promote: Literal["if_better", "always", "manual"] = "if_better"
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=0.9)


class TrainingSpec(TrainingSpecBody):
    name: str
    model: str = Field(description="The registry model this spec's versions go to.")
    created_at: datetime
    updated_at: datetime
    updated_by: str


class SpecList(BaseModel):
    items: list[TrainingSpec]


class TrainRequest(BaseModel):
    specs: list[str] | None = Field(default=None, max_length=500)


class JobsQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=200)
