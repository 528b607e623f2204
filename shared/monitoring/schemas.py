"""The monitoring API models: drift, evaluation and report bodies (pydantic only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# --- drift ---------------------------------------------------------------------------------


class ThresholdsBody(BaseModel):
    p_value_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="A feature drifts when its p-value is below this"
    )
    psi_threshold: float = Field(
        default=0.2,
        ge=0,
        le=100,
        description="... and its PSI at least this (0: the p-value alone decides).",
    )


class DriftRequest(ThresholdsBody):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, description="Rows to compare, one object per row."
    )
    dataset: str | None = Field(default=None, description="A dataset name (CSV/Parquet in Blob).")
    version: int | None = Field(default=None, ge=1, description="Default: champion, else latest.")
    partition: str | int | None = Field(
        default=None, description="Partitioned models: compare with this partition's profile."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DriftRequest:
        if (self.records is None) == (self.dataset is None):
            raise ValueError("send exactly one of 'records' or 'dataset'")
        return self


class RecentDriftQuery(ThresholdsBody):
    hours: float = Field(default=24, gt=0, le=24 * 90, description="The window, in hours.")
    version: int | None = Field(default=None, ge=1)
    partition: str | None = Field(default=None, max_length=200)


class FeatureDrift(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float | None = Field(
        description="KS: the distance D. chi2: X^2 scaled by m/(n+m) (two-sample calibration)."
    )
    p_value: float | None
    psi: float | None
    drift: bool | None = Field(description="null: not tested (see reason).")
    n: int = Field(description="Non-missing values compared.")
    missing: int = Field(description="Missing (or unreadable) values in the new data.")
    reason: str | None = None


class DriftReport(BaseModel):
    model: str
    version: int
    partition: str | None
    source: Literal["records", "dataset", "predictions"]
    n_rows: int = Field(description="Rows compared (after sampling).")
    rows_seen: int = Field(description="Rows read (of the partition, when one is chosen).")
    sampled: bool
    drift_detected: bool
    drifted_features: list[str]
    features: list[FeatureDrift]
    p_value_threshold: float
    psi_threshold: float
    since: datetime | None = Field(default=None, description="Logged predictions: window start.")


# --- evaluation ----------------------------------------------------------------------------


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63, description="A labelled dataset.")
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The label column; default: the target the version was trained on.",
    )
    partition: str | int | None = Field(
        default=None, description="Partitioned models: evaluate this partition only."
    )
    worst: int = Field(default=10, ge=0, le=100, description="How many worst rows to return.")
    max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    include_features: bool = Field(default=True, description="Feature values of worst rows.")


class ConfusionMatrix(BaseModel):
    labels: list[Any] = Field(description="Row i / column j: actual labels[i], predicted [j].")
    matrix: list[list[int]]


class Residuals(BaseModel):
    """Of actual - predicted."""

    mean: float
    std: float
    p05: float
    p50: float
    p95: float


class WorstRow(BaseModel):
    row: int = Field(description="0-based index of the row in the dataset.")
    partition: str | None = None
    actual: Any
    predicted: Any
    error: float = Field(
        description="Regression: |actual - predicted|. Classification: 1 - p(true class)"
        " (1/0 for wrong/right without probabilities). Anomaly: 1 if wrong, 0 if right."
    )
    probability: float | None = Field(default=None, description="p(true class) or score.")
    features: dict[str, Any] | None = None


class SkippedRows(BaseModel):
    missing_target: int = 0
    unknown_partition: int = 0


class EvaluationReport(BaseModel):
    model: str
    version: int
    partition: str | None
    dataset: str
    target: str
    task: str
    n_rows: int = Field(description="Rows evaluated.")
    skipped_rows: SkippedRows
    truncated: bool = Field(description="True when max_rows stopped the evaluation early.")
    metrics: dict[str, float]
    confusion_matrix: ConfusionMatrix | None
    residuals: Residuals | None
    worst_rows: list[WorstRow]


class ReportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = Field(min_length=1, max_length=63)
    from_: datetime | None = Field(
        default=None, alias="from", description="Window start (default: 30 days before 'to')."
    )
    to: datetime | None = Field(default=None, description="Window end (default: now).")
    partition: str | None = Field(default=None, min_length=1, max_length=200)
    top: int = Field(default=10, ge=0, le=100, description="Top anomalous rows per partition.")


class ScoredRow(BaseModel):
    keys: dict[str, Any] = Field(description="The scored row's key columns (ids, timestamps).")
    prediction: Any
    score: float | None = None
    probability: float | None = None
    model_version: int | None = None
    scoring: str = Field(description="The batch scoring job the row comes from.")


class PartitionReport(BaseModel):
    partition: str | None = Field(description="null: the model is not partitioned.")
    rows: int
    anomalies: int | None = None
    anomaly_rate: float | None = None
    predicted: dict[str, int] | None = Field(default=None, description="Rows per class.")
    top_rows: list[ScoredRow] = Field(default_factory=list)
    drift: dict[str, Any] | None = Field(
        default=None,
        description="Drift of this partition's inputs logged in the window (the drift"
        " route's report: drift status per feature).",
    )
    drift_note: str | None = Field(default=None, description="Why there is no drift.")


class Report(BaseModel):
    id: str
    model: str
    task: str | None
    partition_by: str | None
    partition: str | None
    window_from: datetime
    window_to: datetime
    created_at: datetime
    created_by: str
    scored_files: list[str] = Field(description="The scored outputs read.")
    rows: int = Field(description="Scored rows in the window.")
    versions: list[int] = Field(description="The versions that scored them.")
    partitions: list[PartitionReport]


class ReportSummary(BaseModel):
    id: str
    model: str
    created_at: datetime


class ReportPage(BaseModel):
    items: list[ReportSummary]


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=63)
    limit: int = Field(default=50, ge=1, le=500)


class ReportFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(default="json", pattern="^(json|html)$")
