"""The dataset API models and the value types the other dataset modules share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from shared.errors import ValidationFailed
from shared.pages import Page

Format = Literal["csv", "parquet"]
Dtype = Literal["int64", "float64", "bool", "string", "datetime", "category"]
# Per column, in file order: (dtype seen so far or None when no value yet, any value missing).
Profile = dict[str, tuple[Dtype | None, bool]]


class DatasetUnreadable(ValidationFailed):
    """The content is not a CSV/Parquet file pandas or pyarrow can read."""

    code, title = "DATASET_UNREADABLE", "Dataset unreadable"


class DatasetColumn(BaseModel):
    name: str
    dtype: Dtype


class DatasetView(BaseModel):
    """A dataset as the API shows it.

    ``error`` is set (and ``columns`` empty, ``row_count`` 0) when a file dropped straight
    into Blob cannot be read; the dataset is still listed so it can be found and fixed.
    """

    name: str
    format: Literal["csv", "parquet", "mixed"]
    size_bytes: int
    sha256: str
    columns: list[DatasetColumn]
    row_count: int
    uploaded_at: datetime
    files: list[str]
    error: str | None = None


@dataclass(frozen=True)
class DatasetBlob:
    """One data file of a dataset, pinned to the version (ETag) that was listed."""

    path: str
    format: Format
    size: int
    etag: str
    last_modified: datetime
    sha256: str | None = None  # from blob metadata, when the API wrote it


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset's data is: what training needs to read it."""

    name: str
    format: str  # "csv", "parquet" or "mixed"
    files: tuple[DatasetBlob, ...]

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


class DatasetPage(Page[DatasetView]):
    pass
