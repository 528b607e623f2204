"""The batch scoring API models (the job a POST /predict returns is ``jobs.ScoringJob``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.datasets.schemas import DatasetView
from shared.names import ALIAS_PATTERN
from shared.pages import Page
from shared.prediction.batch.jobs import ScoringJob

if TYPE_CHECKING:
    pass


OutputFormat = Literal["parquet", "csv", "both"]


class BatchScoreRequest(BaseModel):
    """``POST /predict``: what to score. Empty body: every model with a scoring dataset."""

    model: str | None = Field(
        default=None, description="Model to score with; null: every model with a scoring dataset."
    )
    dataset: str | None = Field(
        default=None, description="Scoring dataset (container 'scoring'); null: the model's name."
    )
    version: int | None = Field(default=None, ge=1, description="Default: champion, else latest.")
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    output_format: OutputFormat = "parquet"
    key_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Input columns copied to the output; default: every non-feature column.",
    )
    probabilities: Literal["predicted", "per_class"] = Field(
        default="predicted",
        description="Classifiers: 'probability' of the predicted class, or 'proba_<class>'.",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> BatchScoreRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give either 'version' or 'alias', not both")
        if self.version is not None and self.model is None and self.dataset is None:
            raise ValueError("'version' needs a 'model': version numbers are per model")
        return self


class ScoringDatasetPage(Page[DatasetView]):
    pass


class ScoringJobPage(BaseModel):
    items: list[ScoringJob]


class ScoringJobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=63)
    limit: int = Field(default=20, ge=1, le=100)


class OutputQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["parquet", "csv"] = "parquet"
    model: str | None = Field(
        default=None, max_length=63, description="Jobs that scored several models: which one."
    )
