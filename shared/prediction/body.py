"""The body of ``POST /predict/{model}``: decoded with orjson, in any accepted form.

Forms (exactly one per body; ``shared.prediction.schemas.PredictBody`` documents them):

- ``{"records": [{feature: value, ...}, ...]}`` (or MLflow's ``dataframe_records``);
- ``{"columns": [...], "data": [[...], ...]}``, the columnar form;
- ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}``, MLflow's split orient
  (its ``index`` is ignored), so MLflow clients can switch by changing the URL;
- MLflow's other two: ``{"instances": [...]}`` (rows, as ``records``) and ``{"inputs":
  {feature: [...], ...}}`` (one array per feature; a list there is rows, as ``instances``).

Beside the rows: ``version``, ``alias``, ``partition``, ``return_probabilities``, checked
by the pydantic model they always were; other members are ignored, as before. The rows
themselves are not copied into per-row models: :mod:`shared.prediction.table` checks them
against the version's features once it is known.

JSON that orjson refuses is retried with the standard library, which also reads the
``NaN``/``Infinity`` tokens the records body has always accepted (they are scored as
missing / infinite values, as before).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from shared.errors import ValidationFailed
from shared.prediction.schemas import PredictOptions, PredictRequest

_OPTIONS = tuple(PredictOptions.model_fields)
_FORMS = ("records", "dataframe_records", "columns", "dataframe_split", "instances", "inputs")


@dataclass(frozen=True)
class RecordRows:
    """Rows as one JSON object each; ``field`` is the member they came in."""

    records: list[Any]
    field: str = "records"

    @property
    def n_rows(self) -> int:
        return len(self.records)

    @property
    def n_values(self) -> int:
        return sum(len(r) if isinstance(r, dict) else 1 for r in self.records)

    def columns(self, features: list[dict[str, str]]) -> Any:
        from shared.prediction.table import records_columns

        return records_columns(self.records, features)

    def as_records(self) -> list[Any]:
        return self.records


@dataclass(frozen=True)
class TableRows:
    """A columnar table; ``where`` is where ``columns`` and ``data`` sit in the body."""

    column_names: Any
    data: list[Any]
    where: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.data)

    @property
    def n_values(self) -> int:
        width = len(self.column_names) if isinstance(self.column_names, list) else 1
        return len(self.data) * max(1, width)

    def columns(self, features: list[dict[str, str]]) -> Any:
        from shared.prediction.table import table_columns

        return table_columns(self.column_names, self.data, features, self.where)

    def as_records(self) -> list[Any]:
        names = self.column_names if isinstance(self.column_names, list) else []
        return [dict(zip(names, row, strict=False)) for row in self.data]


@dataclass(frozen=True)
class ColumnMapRows:
    """``{"inputs": {feature: [values], ...}}``: one array per column (MLflow's columnar)."""

    mapping: dict[str, Any]

    @property
    def n_rows(self) -> int:
        # The longest array: the row limit is checked before the arrays are compared.
        return max(len(v) if isinstance(v, list) else 1 for v in self.mapping.values())

    @property
    def n_values(self) -> int:
        return sum(len(v) if isinstance(v, list) else 1 for v in self.mapping.values())

    def columns(self, features: list[dict[str, str]]) -> Any:
        from shared.prediction.table import column_map_columns

        return column_map_columns(self.mapping, features)

    def as_records(self) -> list[Any]:
        names = list(self.mapping)
        columns = [v if isinstance(v, list) else [v] for v in self.mapping.values()]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=False)]


class Rows(Protocol):
    """What the engine asks of a request's rows, whatever their form (the three above,
    and ``csv_body.CsvRows``)."""

    @property
    def n_rows(self) -> int: ...

    @property
    def n_values(self) -> int: ...

    def columns(self, features: list[dict[str, str]]) -> Any: ...

    def as_records(self) -> list[Any]: ...


@dataclass(frozen=True)
class OnlineRequest:
    """One prediction request, whatever its body form."""

    rows: Rows
    version: int | None = None
    alias: str | None = None
    partition: str | int | None = None
    return_probabilities: bool = False

    @classmethod
    def of(cls, request: PredictRequest) -> OnlineRequest:
        """A request built in code (entity predictions) with records."""
        return cls(
            RecordRows(request.records),
            request.version,
            request.alias,
            request.partition,
            request.return_probabilities,
        )

    def but(self, **changes: Any) -> OnlineRequest:
        return dataclasses.replace(self, **changes)


def loads(raw: bytes) -> Any:
    """orjson; the standard library for what orjson refuses (NaN/Infinity tokens)."""
    import orjson

    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ValidationFailed(
            "The body is not valid JSON.",
            [{"loc": ["body"], "msg": "invalid JSON", "type": "json_invalid"}],
        ) from None


def options_from_query(query: Mapping[str, str] | None) -> dict[str, Any]:
    """The options given in the query string (``?version=3&return_probabilities=true``):
    how a CSV body, which has no room for them, names a version, alias or partition."""
    given = {k: query[k] for k in _OPTIONS if k in query} if query else {}
    if not given:
        return {}  # the usual JSON request: no validation on the hot path
    try:
        return PredictOptions.model_validate(given).model_dump(include=set(given))
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "The query string is not valid.") from None


def parse_predict_body(raw: bytes, query: Mapping[str, str] | None = None) -> OnlineRequest:
    """The request in the body, rows unchecked (they need the model's features). Options
    may also come from the query string, but each from one place only."""
    from_query = options_from_query(query)
    doc = loads(raw)
    if not isinstance(doc, dict):
        raise ValidationFailed(
            "The body must be a JSON object.",
            [{"loc": ["body"], "msg": "must be an object", "type": "model_type"}],
        )
    twice = sorted(set(from_query) & set(doc))
    if twice:
        raise ValidationFailed(
            f"Give {', '.join(repr(t) for t in twice)} in the body or in the query string,"
            " not in both.",
            [{"loc": ["query", t], "msg": "also in the body", "type": "conflict"} for t in twice],
        )
    try:
        options = PredictOptions.model_validate(
            {**{k: doc[k] for k in _OPTIONS if k in doc}, **from_query}
        )
    except ValidationError as exc:
        raise ValidationFailed.from_pydantic(exc, "The body is not valid.") from None
    given = [f for f in _FORMS if f in doc]
    if "data" in doc and "columns" not in doc:
        given.append("data")
    if len(given) != 1:
        raise ValidationFailed(
            "Send the rows in one form: 'records', 'columns' with 'data', 'dataframe_split',"
            " 'dataframe_records', 'instances' or 'inputs'"
            + (f" (this body has {', '.join(repr(g) for g in given)})." if given else "."),
            [
                {"loc": [g], "msg": "one form of rows per body", "type": "form"}
                for g in given or ["records"]
            ],
        )
    rows = _rows(doc, given[0])
    return OnlineRequest(rows, **options.model_dump())


def _rows(doc: dict[str, Any], form: str) -> Rows:
    if form == "inputs" and isinstance(doc[form], dict):
        if not doc[form]:
            raise ValidationFailed(
                "'inputs' must hold one array of values per feature.",
                [{"loc": [form], "msg": "must be a non-empty object", "type": "inputs"}],
            )
        return ColumnMapRows(doc[form])
    if form in ("records", "dataframe_records", "instances", "inputs"):
        records = doc[form]
        if not isinstance(records, list) or not records:
            raise ValidationFailed(
                f"'{form}' must be a non-empty array of objects (one per row).",
                [{"loc": [form], "msg": "must be a non-empty array", "type": "records"}],
            )
        return RecordRows(records, form)
    if form == "dataframe_split":
        split = doc[form]
        if not isinstance(split, dict):
            raise ValidationFailed(
                "'dataframe_split' must be an object with 'columns' and 'data'.",
                [{"loc": [form], "msg": "must be an object", "type": "model_type"}],
            )
        where: tuple[str, ...] = (form,)
    else:
        split, where = doc, ()
    missing = [m for m in ("columns", "data") if m not in split]
    if missing:
        raise ValidationFailed(
            f"A columnar body needs 'columns' and 'data' (missing: {', '.join(missing)}).",
            [{"loc": [*where, m], "msg": "Field required", "type": "missing"} for m in missing],
        )
    if not isinstance(split["data"], list) or not split["data"]:
        raise ValidationFailed(
            "'data' must be a non-empty array of rows.",
            [{"loc": [*where, "data"], "msg": "must be a non-empty array", "type": "data"}],
        )
    return TableRows(split["columns"], split["data"], where)
