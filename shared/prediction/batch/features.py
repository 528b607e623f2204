"""Typing one Arrow batch's feature columns as the online path types JSON fields.

Numbers become floats (missing: NaN), strings ``str`` (missing: ``""``), booleans 0/1
(missing: NaN); a value that cannot be typed marks its row invalid, with a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.prediction.runtime import NUMBER, STRING, Columns, kind

if TYPE_CHECKING:
    import pandas as pd

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


# --- typing one batch ------------------------------------------------------------------


@dataclass
class Typed:
    """One batch's features in the model's order, which rows are usable, and why not."""

    columns: Columns
    valid: np.ndarray
    reasons: Counter[str]


def _numbers(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    t = col.type
    present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), np.zeros(len(col), dtype=bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        import pandas as pd  # lazy: only text columns need it

        text = pc.utf8_trim_whitespace(col.cast(pa.string()))
        raw = text.to_numpy(zero_copy_only=False)
        parsed = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        empty = np.asarray(pc.equal(text, "").fill_null(True).to_numpy(zero_copy_only=False))
        bad = present & ~empty & np.isnan(parsed)
        return parsed, bad
    # bool, timestamps, nested: online refuses them for a number feature, so does batch.
    return np.full(len(col), np.nan), present


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return np.asarray(
            pc.fill_null(col.cast(pa.string()), "").to_numpy(zero_copy_only=False), dtype=object
        )
    # As training prepares them (str of the value), so integer ids keep matching.
    return np.array(["" if v is None else str(v) for v in col.to_pylist()], dtype=object)


def _bools(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    t = col.type
    present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_boolean(t):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False)), np.zeros(
            len(col), bool
        )
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
        bad = present & ~np.isin(values, (0.0, 1.0))
        return np.where(bad, np.nan, values), bad
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string())))
        raw = text.to_numpy(zero_copy_only=False)
        out = np.full(len(col), np.nan)
        is_true = np.isin(raw, list(_TRUE))
        is_false = np.isin(raw, list(_FALSE))
        out[is_true], out[is_false] = 1.0, 0.0
        empty = np.asarray(pc.equal(text, "").fill_null(True).to_numpy(zero_copy_only=False))
        return out, present & ~empty & ~is_true & ~is_false
    return np.full(len(col), np.nan), present


def type_features(table: pa.Table | pa.RecordBatch, features: Sequence[dict[str, str]]) -> Typed:
    """The features of one batch as :class:`Columns` (numpy arrays), with invalid rows.

    Raises ``KeyError`` when a feature column is absent (a dataset problem, not a row's).
    """
    n = table.num_rows
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    valid = np.ones(n, dtype=bool)
    reasons: Counter[str] = Counter()
    values: list[Any] = []
    present = set(table.schema.names)
    missing = [name for name in names if name not in present]
    if missing:
        raise KeyError(f"missing feature column(s): {', '.join(missing)}")
    for name, k in zip(names, kinds, strict=True):
        col = table.column(name)
        if isinstance(col, pa.Array):
            col = pa.chunked_array([col], type=col.type)
        if k == STRING:
            values.append(_strings(col))
            continue
        converted, bad = _numbers(col) if k == NUMBER else _bools(col)
        if bad.any():
            expected = "a number" if k == NUMBER else "a boolean"
            reasons[f"feature '{name}' must be {expected}"] += int(np.count_nonzero(bad & valid))
            valid &= ~bad
        values.append(converted)
    return Typed(Columns(names, kinds, values, n, []), valid, reasons)


def typed_frame(frame: pd.DataFrame, features: Sequence[dict[str, str]]) -> Typed:
    """:func:`type_features` for a pandas chunk (a CSV chunk, a test's frame)."""
    return type_features(pa.Table.from_pandas(frame, preserve_index=False), features)


def take(cols: Columns, rows: np.ndarray) -> Columns:
    """The given rows (positions) of every column."""
    return Columns(cols.names, cols.kinds, [v[rows] for v in cols.values], len(rows), [])
