"""The training API models: specs, the POST /train body, job queries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.names import NAME_PATTERN

# Parameters that set how much work (or how many cores) one training takes: bounded, so a
# spec cannot ask for 1e9 trees. Integers only; n_jobs stays 1 (training fans out itself).
_WORK_PARAMS: dict[str, tuple[int, int]] = {
    "max_depth": (1, 1000),
    "max_iter": (1, 100_000),
    "max_leaf_nodes": (2, 100_000),
    "max_bins": (2, 255),
    "min_samples_leaf": (1, 10_000_000),
    "min_samples_split": (2, 10_000_000),
    "n_jobs": (1, 1),
}
MAX_PARAM_ITEMS = 100


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Bounded work parameters and small values (ValueError -> 422 through pydantic)."""
    from shared.settings import get_settings

    bounds = {**_WORK_PARAMS, "n_estimators": (1, get_settings().training_max_estimators)}
    for name, value in params.items():
        if name in bounds:
            low, high = bounds[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"'{name}' must be an integer from {low} to {high}")
        elif isinstance(value, list | dict) and len(value) > MAX_PARAM_ITEMS:
            raise ValueError(f"'{name}' holds more than {MAX_PARAM_ITEMS} items")
        elif isinstance(value, str) and len(value) > 200:
            raise ValueError(f"'{name}' is longer than 200 characters")
    return params


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

    @field_validator("params")
    @classmethod
    def _bounded(cls, params: dict[str, Any]) -> dict[str, Any]:
        return check_params(params)


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
