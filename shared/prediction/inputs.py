"""Checking JSON records against a version's feature schema, into :class:`Columns`.

Pure Python: this is the hot path, so no pandas and no scikit-learn here. Rule for extra
fields: fields that are not features are ignored (applications often send ids and
timestamps along) and named in the response's ``ignored_fields``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from shared.errors import ValidationFailed
from shared.prediction.runtime import BOOL, NUMBER, STRING, Columns, kind

MAX_ERRORS = 20


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
