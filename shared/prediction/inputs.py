"""Checking prediction input against a version's feature schema, and shaping it.

Pure Python + numpy: this is the hot path, so no pandas and no scikit-learn here.
Rule for extra fields: fields that are not features are ignored (applications often
send ids and timestamps along) and named in the response's ``ignored_fields``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import ValidationFailed

NUMBER, STRING, BOOL = "number", "string", "bool"
_NUMERIC_DTYPES = {"number", "float32", "float64", "int64", "int32", "double", "float", "int"}
MAX_ERRORS = 20


def kind(dtype: str) -> str:
    if dtype in _NUMERIC_DTYPES:
        return NUMBER
    if dtype in ("bool", "boolean"):
        return BOOL
    return STRING


@dataclass(frozen=True)
class Columns:
    """Validated input, column by column, in the model's feature order."""

    names: list[str]
    kinds: list[str]
    values: list[list[Any]]
    n_rows: int
    ignored_fields: list[str]


def _number(value: Any) -> float | None:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # a 400-digit integer is no float: refused like any bad value
        return None


def _bool(value: Any) -> float | None:
    if value is None:
        return math.nan
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return float(value)
    return None


def _string(value: Any) -> str | None:
    if value is None:
        return ""
    return value if isinstance(value, str) else None


_CHECK = {NUMBER: (_number, "a number"), BOOL: (_bool, "a boolean"), STRING: (_string, "a string")}


def check_records(records: Sequence[Any], features: Sequence[dict[str, str]]) -> Columns:
    """422 naming the record index and field of every missing or mistyped feature."""
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    errors: list[dict[str, Any]] = []
    columns: list[list[Any]] = [[] for _ in names]
    known = set(names)
    ignored: set[str] = set()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append({"loc": ["records", index], "msg": "must be an object", "type": "record"})
            continue
        if len(record) > len(names):
            ignored.update(k for k in record if k not in known)
        for position, (name, k) in enumerate(zip(names, kinds, strict=True)):
            if name not in record:
                errors.append(
                    {"loc": ["records", index, name], "msg": "missing feature", "type": "missing"}
                )
                continue
            convert, expected = _CHECK[k]
            value = convert(record[name])
            if value is None:
                errors.append(
                    {"loc": ["records", index, name], "msg": f"must be {expected}", "type": "type"}
                )
                continue
            columns[position].append(value)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        first = errors[0]["loc"]
        raise ValidationFailed(
            f"Input does not match the model's features (first: record {first[1]}"
            + (f", field '{first[2]}')." if len(first) > 2 else ")."),
            errors,
        )
    return Columns(names, kinds, columns, len(records), sorted(ignored))


def onnx_feed(session: Any, cols: Columns) -> dict[str, np.ndarray]:
    """The feed of an ONNX session: one [n, 1] input per feature, or one [n, k] matrix."""
    inputs = session.get_inputs()
    if len(inputs) == len(cols.names):
        feed = {}
        for spec, values, k in zip(inputs, cols.values, cols.kinds, strict=True):
            if k == STRING or spec.type == "tensor(string)":
                array = np.array([str(v) for v in values], dtype=object)
            else:
                array = np.asarray(values, dtype=_np_type(spec.type))
            feed[spec.name] = array.reshape(-1, 1)
        return feed
    if len(inputs) == 1:
        matrix = np.asarray(cols.values, dtype=_np_type(inputs[0].type)).T
        return {inputs[0].name: matrix.reshape(cols.n_rows, len(cols.names))}
    raise ValidationFailed("The model's inputs do not match its recorded features.")


def _np_type(onnx_type: str) -> Any:
    return {"tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(
        onnx_type, np.float32
    )


def as_frame(cols: Columns) -> Any:
    """A DataFrame for the scikit-learn fallback (imports pandas lazily)."""
    import pandas as pd

    return pd.DataFrame(dict(zip(cols.names, cols.values, strict=True)))
