"""Portable column dtypes: what pandas and pyarrow types are called, how they widen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.datasets.schemas import DatasetColumn, Dtype, Profile

if TYPE_CHECKING:
    import pandas as pd


def dtype_of_pandas(dtype: Any) -> Dtype:
    """The portable name of a pandas dtype.

    Mapping (CSV data and DataFrames): any bool/boolean -> ``bool``; any signed or unsigned
    integer -> ``int64``; any float -> ``float64``; datetime64 (naive or tz-aware) ->
    ``datetime``; Categorical -> ``category``; everything else (object, str, timedelta,
    complex, ...) -> ``string``.
    """
    import pandas as pd
    from pandas.api import types as t

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if t.is_bool_dtype(dtype):
        return "bool"
    if t.is_integer_dtype(dtype):
        return "int64"
    if t.is_float_dtype(dtype):
        return "float64"
    if t.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def dtype_of_arrow(arrow_type: Any) -> Dtype:
    """The portable name of a pyarrow (Parquet) type.

    Mapping: dictionary-encoded -> ``category``; bool -> ``bool``; any integer width ->
    ``int64``; float16/32/64 and decimal -> ``float64``; timestamp and date -> ``datetime``;
    everything else (string, binary, time, duration, null, nested) -> ``string``.
    """
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        return "category"
    if t.is_boolean(arrow_type):
        return "bool"
    if t.is_integer(arrow_type):
        return "int64"
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return "float64"
    if t.is_timestamp(arrow_type) or t.is_date(arrow_type):
        return "datetime"
    return "string"


def merge_dtypes(a: Dtype | None, b: Dtype | None) -> Dtype | None:
    """Widen a column's dtype across CSV chunks; ``None`` means "no value seen yet".

    Integers meeting floats become ``float64``; any other disagreement becomes ``string``.
    """
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} <= {"int64", "float64"}:
        return "float64"
    return "string"


def to_datetime(values: Any) -> Any:
    import pandas as pd

    # utc=True: one rule for naive and offset-bearing text, and mixed offsets never raise.
    return pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")


def _text_kind(series: Any) -> Dtype:
    """What a text column of one CSV chunk holds: ``bool``, ISO 8601 ``datetime`` or text."""
    import pandas as pd

    values = series.dropna()
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "boolean":
        return "bool"  # True/False with gaps: pandas keeps these as object
    if kind == "string":
        try:
            parsed = to_datetime(values)
        except (ValueError, TypeError, OverflowError):
            return "string"
        if not parsed.isna().any():
            return "datetime"
    return "string"


def chunk_dtypes(frame: pd.DataFrame) -> Profile:
    """The profile of one CSV chunk."""
    out: Profile = {}
    for position, name in enumerate(frame.columns):
        series = frame.iloc[:, position]
        missing = bool(series.isna().any())
        if series.isna().all():  # no value (or no row) here: says nothing about the type
            out[str(name)] = (None, missing)
            continue
        kind = dtype_of_pandas(series.dtype)
        if kind == "string":
            kind = _text_kind(series)
        out[str(name)] = (kind, missing)
    return out


def final_dtype(kind: Dtype | None, missing: bool) -> Dtype:
    """A profiled column's dtype: no value at all, or integers with gaps, read as float64."""
    if kind is None or (kind == "int64" and missing):
        return "float64"
    return kind


def merge_profiles(profiles: Sequence[Profile]) -> list[DatasetColumn]:
    """Columns of several files: the first file's names and order, dtypes widened over all."""
    columns = []
    for name in profiles[0]:
        kind: Dtype | None = None
        missing = False
        for profile in profiles:
            if name in profile:
                kind = merge_dtypes(kind, profile[name][0])
                missing = missing or profile[name][1]
        columns.append(DatasetColumn(name=name, dtype=final_dtype(kind, missing)))
    return columns
