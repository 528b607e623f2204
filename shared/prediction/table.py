"""Rows of an online request (records or a columnar table) -> validated :class:`Columns`,
vectorised.

Same rules as :func:`shared.prediction.inputs.check_records` (numbers: JSON numbers or
null = NaN, never booleans or text; booleans: true/false, 0/1 or null; strings: text or
null = ""), but the common case costs no Python work per value: the types of all values
are collected with C-level ``map``/``set`` calls, and a column of numbers becomes a
float64 array in one ``numpy.array`` call. Only when that check finds something else does
a per-value pass run, to name the row and column at fault (at most ``MAX_ERRORS``).

numpy only, and imported by the prediction engine, never by ``function_app``.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shared.errors import ValidationFailed
from shared.prediction.inputs import _CHECK, MAX_ERRORS, check_records
from shared.prediction.runtime import BOOL, NUMBER, STRING, Columns, kind

_NUMBER_TYPES = frozenset({float, int, type(None)})
_BOOL_TYPES = frozenset({bool, type(None)})
_SHOWN_NAME_CHARS = 100  # names echoed in an error are cut: a name may be any size


def _shown(name: Any) -> str:
    text = str(name)
    return text if len(text) <= _SHOWN_NAME_CHARS else text[:_SHOWN_NAME_CHARS] + "..."


def _float_matrix(rows: Sequence[Sequence[Any]]) -> np.ndarray | None:
    """A float64 [n, k] array when every value is a JSON number or null (NaN), else None
    (a boolean, text, a nested value or an integer beyond float range: the caller looks)."""
    if not set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES:
        return None
    try:
        return np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError):
        return None


def _fast_column(values: list[Any], k: str) -> Any:
    """The column as Columns holds it, or None when a value needs a closer look."""
    types = set(map(type, values))
    if k == NUMBER and types <= _NUMBER_TYPES:
        try:
            return np.array(values, dtype=np.float64)
        except OverflowError:
            return None
    if k == BOOL and types <= _BOOL_TYPES:
        return np.array(values, dtype=np.float64)  # True/False -> 1.0/0.0, None -> NaN
    if k == STRING and types == {str}:
        return values
    return None


def _checked_column(
    values: list[Any],
    k: str,
    loc: Callable[[int], list[Any]],
    errors: list[dict[str, Any]],
    check: dict[str, tuple[Callable[[Any], Any], str]] = _CHECK,
) -> list[Any]:
    """The per-value pass (inputs.py's converters, or ``check``'s): appends an error per
    bad value."""
    convert, expected = check[k]
    out = []
    for row, value in enumerate(values):
        converted = convert(value)
        if converted is None:
            errors.append({"loc": loc(row), "msg": f"must be {expected}", "type": "type"})
            if len(errors) >= MAX_ERRORS:
                break
        out.append(converted)
    return out


def _refuse(errors: list[dict[str, Any]], what: str) -> ValidationFailed:
    first = errors[0]["loc"]
    return ValidationFailed(
        f"Input does not match the model's features (first: {what} {first[-2]},"
        f" column '{_shown(first[-1])}').",
        errors[:MAX_ERRORS],
    )


# --- records ---------------------------------------------------------------------------------
def records_columns(records: Sequence[Any], features: Sequence[dict[str, str]]) -> Columns:
    """Records -> Columns, as check_records would build them (its errors, its ignored
    fields), without a Python step per value when all features are numbers."""
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    if not names or any(k != NUMBER for k in kinds):
        return check_records(records, features)
    getter = operator.itemgetter(*names)
    try:
        rows = list(map(getter, records))
    except (KeyError, TypeError):  # a missing feature or a record that is no object
        return check_records(records, features)
    if len(names) == 1:
        rows = [(v,) for v in rows]  # itemgetter of one name gives the value itself
    matrix = _float_matrix(rows)
    if matrix is None:
        return check_records(records, features)  # names the record and field at fault
    ignored: set[str] = set()
    if max(map(len, records)) > len(names):  # every feature is there: longer = extras
        known = set(names)
        for record in records:
            if len(record) > len(names):
                ignored.update(k for k in record if k not in known)
    return Columns(names, kinds, list(matrix.T), len(rows), sorted(ignored), matrix)


# --- a columnar table -------------------------------------------------------------------------
def table_columns(
    columns: Any, data: Any, features: Sequence[dict[str, str]], where: Sequence[str] = ()
) -> Columns:
    """``{"columns": [...], "data": [[...], ...]}`` -> Columns; a 422 names the column
    (unknown, missing, duplicated) or the row and column (ragged, wrong type) at fault.

    ``where`` is the location of the two members in the body (``("dataframe_split",)``),
    so errors point where the client put them. Columns that are not features are refused
    (a columnar body pays for every cell it sends; records only ignore such fields)."""
    at = list(where)
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    position = column_positions(columns, names, at)
    rows = _rows_of(data, len(columns), at)
    if all(k == NUMBER for k in kinds):
        matrix = _float_matrix(rows)
        if matrix is not None:
            ordered = matrix[:, [position[n] for n in names]]  # the features' order
            return Columns(names, kinds, list(ordered.T), len(rows), [], ordered)
    values: list[Any] = []
    errors: list[dict[str, Any]] = []
    for name, k in zip(names, kinds, strict=True):
        p = position[name]
        column = list(map(operator.itemgetter(p), rows))
        fast = _fast_column(column, k)
        if fast is None:
            fast = _checked_column(column, k, lambda r, n=name: [*at, "data", r, n], errors)
            if len(errors) >= MAX_ERRORS:
                break
        values.append(fast)
    if errors:
        errors.sort(key=lambda e: e["loc"][-2])  # first by row, as records are reported
        raise _refuse(errors, "row")
    return Columns(names, kinds, values, len(rows), [])


def column_positions(columns: Any, names: list[str], at: list[Any]) -> dict[str, int]:
    loc = [*at, "columns"]
    if not isinstance(columns, list) or not columns:
        raise ValidationFailed(
            "'columns' must be a non-empty array of feature names.",
            [{"loc": loc, "msg": "must be a non-empty array of strings", "type": "columns"}],
        )
    bad = next((i for i, c in enumerate(columns) if not isinstance(c, str)), None)
    if bad is not None:
        raise ValidationFailed(
            f"Column {bad} is not a name: columns are strings.",
            [{"loc": [*loc, bad], "msg": "must be a string", "type": "type"}],
        )
    position: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name in position:
            raise ValidationFailed(
                f"Column '{_shown(name)}' is sent twice.",
                [{"loc": [*loc, i], "msg": "duplicate column", "type": "duplicate"}],
                code="DUPLICATE_COLUMN",
            )
        position[name] = i
    known = set(names)
    unknown = [(i, c) for i, c in enumerate(columns) if c not in known]
    if unknown:
        raise ValidationFailed(
            f"Unknown column{'s' if len(unknown) > 1 else ''}:"
            f" {', '.join(_shown(c) for _, c in unknown[:MAX_ERRORS])}; this model's features"
            f" are {', '.join(names[:MAX_ERRORS])}{'...' if len(names) > MAX_ERRORS else ''}.",
            [
                {"loc": [*loc, i], "msg": "not a feature of this model", "type": "unknown"}
                for i, _ in unknown[:MAX_ERRORS]
            ],
            code="UNKNOWN_COLUMN",
        )
    missing = [n for n in names if n not in position]
    if missing:
        raise ValidationFailed(
            f"Missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing[:MAX_ERRORS])}.",
            [
                {"loc": [*loc, n], "msg": "missing feature", "type": "missing"}
                for n in missing[:MAX_ERRORS]
            ],
            code="MISSING_COLUMN",
        )
    return position


def _rows_of(data: Any, width: int, at: list[Any]) -> list[list[Any]]:
    loc = [*at, "data"]
    if not isinstance(data, list) or not data:
        raise ValidationFailed(
            "'data' must be a non-empty array of rows.",
            [{"loc": loc, "msg": "must be a non-empty array of arrays", "type": "data"}],
        )
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        row = next(i for i, r in enumerate(data) if not isinstance(r, list) or len(r) != width)
        got = f"{len(data[row])} values" if isinstance(data[row], list) else "no array"
        raise ValidationFailed(
            f"Row {row} has {got}; every row holds one value per column ({width}).",
            [{"loc": [*loc, row], "msg": f"must hold {width} values", "type": "ragged"}],
            code="RAGGED_ROWS",
        )
    return data


# --- one array per column ---------------------------------------------------------------------
def column_map_columns(mapping: dict[str, Any], features: Sequence[dict[str, str]]) -> Columns:
    """``{"inputs": {feature: [values]}}`` -> Columns, by the rules of the columnar table:
    every feature once, nothing else, arrays of one length; a 422 names the culprit."""
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    column_positions(list(mapping), names, ["inputs"])  # unknown / missing names
    lengths = {n: len(v) if isinstance(v, list) else -1 for n, v in mapping.items()}
    n_rows = lengths[names[0]]
    bad = next((n for n in names if lengths[n] != n_rows or lengths[n] < 1), None)
    if bad is not None:
        raise ValidationFailed(
            f"Every feature in 'inputs' is an array of the same, non-zero length"
            f" ('{_shown(bad)}' is not).",
            [{"loc": ["inputs", bad], "msg": "must be an array like the others", "type": "ragged"}],
            code="RAGGED_ROWS",
        )
    values: list[Any] = []
    errors: list[dict[str, Any]] = []
    for name, k in zip(names, kinds, strict=True):
        fast = _fast_column(mapping[name], k)
        if fast is None:
            fast = _checked_column(mapping[name], k, lambda r, n=name: ["inputs", n, r], errors)
            if len(errors) >= MAX_ERRORS:
                break
        values.append(fast)
    if errors:
        first = errors[0]["loc"]
        raise ValidationFailed(
            f"Input does not match the model's features (first: column '{_shown(first[1])}',"
            f" row {first[2]}).",
            errors[:MAX_ERRORS],
        )
    if all(k == NUMBER for k in kinds):
        matrix = np.column_stack(values)
        return Columns(names, kinds, list(matrix.T), n_rows, [], matrix)
    return Columns(names, kinds, values, n_rows, [])


# --- a CSV body: text cells ---------------------------------------------------------------
def _text_number(cell: str) -> float | None:
    if not cell.strip():
        return math.nan  # an empty cell is a missing value
    try:
        return float(cell)  # what numpy's string-to-float cast reads too
    except ValueError:
        return None


_TEXT_BOOLS = {"true": 1.0, "1": 1.0, "false": 0.0, "0": 0.0, "": math.nan}
_TEXT_CHECK: dict[str, tuple[Callable[[Any], Any], str]] = {
    NUMBER: (_text_number, "a number"),
    BOOL: (lambda cell: _TEXT_BOOLS.get(cell.strip().lower()), "true, false, 1 or 0"),
    STRING: (lambda cell: cell, "text"),
}


def _text_numbers(column: list[str]) -> np.ndarray | None:
    """A column of number cells in one numpy call, or None (an empty cell or text)."""
    try:
        return np.array(column, dtype=np.float64)
    except ValueError:
        return None


def csv_columns(
    header: list[str], cells: list[list[str]], features: Sequence[dict[str, str]]
) -> Columns:
    """A CSV body's header and text cells (rows as long as the header) -> Columns, by the
    columnar table's rules; a number cell is what ``float`` reads (empty: missing), a
    boolean ``true``/``false``/``1``/``0`` in any case (empty: missing), text as sent.
    A 422 names the row and column of a bad cell (``loc: ["body", row, column]``)."""
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    position = column_positions(header, names, ["body", "header"])
    numeric = all(k == NUMBER for k in kinds)
    if numeric:
        try:  # the common case: every cell a number, one numpy call for the table
            matrix = np.array(cells, dtype=np.float64)[:, [position[n] for n in names]]
        except ValueError:
            pass  # an empty cell or text: column by column below
        else:
            return Columns(names, kinds, list(matrix.T), len(cells), [], matrix)
    values: list[Any] = []
    errors: list[dict[str, Any]] = []
    for name, k in zip(names, kinds, strict=True):
        column = list(map(operator.itemgetter(position[name]), cells))
        fast = column if k == STRING else _text_numbers(column) if k == NUMBER else None
        if fast is None:
            where = lambda r, n=name: ["body", r, n]  # noqa: E731 (the row, then the column)
            fast = _checked_column(column, k, where, errors, _TEXT_CHECK)
            if len(errors) >= MAX_ERRORS:
                break
        values.append(fast)
    if errors:
        errors.sort(key=lambda e: e["loc"][-2])  # first by row
        raise _refuse(errors, "row")
    if numeric:
        matrix = np.column_stack(values)
        return Columns(names, kinds, list(matrix.T), len(cells), [], matrix)
    return Columns(names, kinds, values, len(cells), [])
