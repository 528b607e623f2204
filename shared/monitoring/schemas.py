"""Bodies of the report routes (pydantic only: imported when function_app loads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
