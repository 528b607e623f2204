"""Appending records to a dataset: each batch becomes a new immutable Parquet part.

``POST /datasets/{name}/records`` takes a JSON array of objects, or a CSV or Parquet body,
checks every record against the dataset's columns (422 naming the record and field:
every column present, nothing else, each value of its column's type or null), casts to
the dataset's dtypes and writes ``datasets/{name}/part-{sha256 of the rows}.parquet``.

The part's name is the hash of its content, so the same batch sent twice is stored once
(the second answer says ``replayed``), with or without an ``Idempotency-Key``; with one,
a different batch under the same key is refused (409). Training and batch scoring read
every file of a dataset's folder, parts included. The dataset's metadata (rows, files,
last ingested) is updated from the part's footer, without re-reading earlier files.
"""

from __future__ import annotations

import io
import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.errors import UnsupportedMediaType, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

    from shared.datasets.schemas import DatasetColumn

MAX_ERRORS = 20


def _check_value(value: Any, dtype: str) -> bool:
    if value is None:
        return True
    if dtype in ("int64",):
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if dtype == "float64":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return not isinstance(value, float) or math.isfinite(value) or math.isnan(value)
    if dtype == "bool":
        return isinstance(value, bool)
    if dtype == "datetime":
        if not isinstance(value, str) or len(value) > 64:
            return False
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    return isinstance(value, str)  # string, category


_EXPECTED = {
    "int64": "an integer",
    "float64": "a number",
    "bool": "a boolean",
    "datetime": "an ISO 8601 timestamp",
    "string": "a string",
    "category": "a string",
}


def check_records(records: Any, columns: list[DatasetColumn]) -> None:
    """422 naming every bad record/field (the first 20): exactly the dataset's columns."""
    if not isinstance(records, list) or not records:
        raise ValidationFailed("Send a non-empty JSON array of records (objects).")
    names = {c.name: c.dtype for c in columns}
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            errors.append({"loc": ["body", index], "msg": "must be an object", "type": "record"})
        else:
            for field in record.keys() - names.keys():
                errors.append(
                    {"loc": ["body", index, field[:100]], "msg": "not a column", "type": "extra"}
                )
            for field, dtype in names.items():
                if field not in record:
                    errors.append(
                        {"loc": ["body", index, field], "msg": "missing column", "type": "missing"}
                    )
                elif not _check_value(record[field], dtype):
                    errors.append(
                        {
                            "loc": ["body", index, field],
                            "msg": f"must be {_EXPECTED[dtype]} or null",
                            "type": "type",
                        }
                    )
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        first = errors[0]["loc"]
        where = f"record {first[1]}" + (f", field '{first[2]}'" if len(first) > 2 else "")
        raise ValidationFailed(f"The records do not match the dataset's columns ({where}).", errors)


def to_frame(records: list[dict[str, Any]], columns: list[DatasetColumn]) -> pd.DataFrame:
    """The checked records as a DataFrame of the dataset's dtypes, in its column order."""
    import pandas as pd

    frame = pd.DataFrame.from_records(records, columns=[c.name for c in columns])
    for column in columns:
        values = frame[column.name]
        if column.dtype == "int64":
            frame[column.name] = values.astype("Int64")
        elif column.dtype == "float64":
            frame[column.name] = pd.to_numeric(values, errors="raise").astype("float64")
        elif column.dtype == "bool":
            frame[column.name] = values.astype("boolean")
        elif column.dtype == "datetime":
            frame[column.name] = pd.to_datetime(values, utc=True, format="ISO8601")
        else:
            frame[column.name] = values.astype("string")
    return frame


def parse_body(data: bytes, media_type: str, columns: list[DatasetColumn]) -> pd.DataFrame:
    """JSON records, or a CSV/Parquet file whose rows are checked the same way."""
    import pandas as pd

    if media_type in ("application/json", "") or media_type.endswith("+json"):
        try:
            records = json.loads(data)
        except ValueError:
            raise ValidationFailed("The body is not valid JSON.") from None
        check_records(records, columns)
        return to_frame(records, columns)
    from shared.datasets.formats import upload_format

    fmt = upload_format(data, media_type=media_type, filename=None)
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (ValueError, OSError) as exc:
        raise UnsupportedMediaType(f"The {fmt} body cannot be read: {exc}"[:300]) from None
    records = _records_of(frame, fmt, columns)
    check_records(records, columns)
    return to_frame(records, columns)


def _records_of(frame: pd.DataFrame, fmt: str, columns: list[DatasetColumn]) -> list[dict]:
    """Rows as plain values: CSV text is converted per the dataset's dtypes first."""
    if fmt == "parquet":
        text = frame.to_json(orient="records", date_format="iso")
        return json.loads(text)
    dtypes = {c.name: c.dtype for c in columns}
    records = []
    for row in frame.to_dict("records"):
        records.append({k: _from_text(v, dtypes.get(k)) for k, v in row.items()})
    return records


def _from_text(text: str, dtype: str | None) -> Any:
    if text == "":
        return None
    try:
        if dtype == "int64":
            return int(text)
        if dtype == "float64":
            return float(text)
    except ValueError:
        return text  # reported as the wrong type
    if dtype == "bool":
        lowered = text.strip().lower()
        return {"true": True, "false": False, "1": True, "0": False}.get(lowered, text)
    return text


class Ingestor:
    """Checks, converts and appends one batch; honours Idempotency-Key."""

    def __init__(self, datasets: Any, idempotency: Any, scope: str = "ingest") -> None:
        self.datasets = datasets  # a DatasetStore: training datasets, or scoring inputs
        self.idempotency = idempotency
        self.scope = scope

    def ingest(
        self, name: str, data: bytes, media_type: str, idempotency_key: str | None
    ) -> tuple[dict[str, Any], bool]:
        """(result, replayed). 404 for an unknown dataset; nothing is written on a 4xx."""
        import hashlib

        from shared.names import check_name

        check_name(name, "dataset")
        scope, fingerprint = f"{self.scope}:{name}", hashlib.sha256(data).hexdigest()
        if idempotency_key is not None:
            earlier = self.idempotency.begin(scope, idempotency_key, fingerprint)
            if earlier is not None:
                return {**earlier, "replayed": True}, True
        try:
            view = self.datasets.get(name)
            if view.error:
                raise ValidationFailed(f"Dataset '{name}' cannot be read: {view.error}"[:500])
            frame = parse_body(data, media_type, view.columns)
            updated, part, replayed = self.datasets.append(name, frame)
        except Exception:
            if idempotency_key is not None:
                self.idempotency.abandon(scope, idempotency_key)
            raise
        result = {
            "dataset": updated.model_dump(mode="json"),
            "part": part,
            "rows": len(frame),
            "replayed": replayed,
        }
        if idempotency_key is not None:
            self.idempotency.complete(scope, idempotency_key, result)
        return result, replayed
