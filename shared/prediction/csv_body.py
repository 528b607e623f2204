"""``POST /predict/{model}`` with ``Content-Type: text/csv``: the body MLflow's scoring
server takes besides JSON (pandas' CSV: a header row of column names, one row per record).

The cells stay text until the version's features are known. Then a number feature's cells
become floats in one numpy call (an empty cell is a missing value, NaN; numpy reads what
Python's ``float`` reads), a boolean's are ``true``/``false``/``1``/``0`` (any case; empty:
missing), a text feature's are kept as sent. The columnar table's rules apply: every
feature exactly once, no other column (``UNKNOWN_COLUMN``, ``MISSING_COLUMN``,
``DUPLICATE_COLUMN``), one cell per column in every row (``RAGGED_ROWS``).

Bounded: the body's size is checked before this runs, and reading stops at the first row
past the records limit (a 16 MB body of one-character rows would otherwise become millions
of Python lists). The options (version, alias, partition, return_probabilities) come from
the query string.
"""

from __future__ import annotations

import csv
import io
import math
import operator
from dataclasses import dataclass, field
from typing import Any

from shared.errors import PayloadTooLarge, ValidationFailed
from shared.prediction.body import OnlineRequest, options_from_query
from shared.prediction.runtime import BOOL, NUMBER, Columns, kind

_TRUE, _FALSE, _MISSING = frozenset({"true", "1"}), frozenset({"false", "0"}), frozenset({""})
MAX_ERRORS = 20


def _invalid(message: str, loc: list[Any], error: str, code: str | None = None) -> ValidationFailed:
    return ValidationFailed(message, [{"loc": loc, "msg": message, "type": error}], code=code)


@dataclass(frozen=True)
class CsvRows:
    """A CSV body's header and rows of text cells (every row as long as the header)."""

    header: list[str]
    cells: list[list[str]]
    # What the last ``columns`` call read, for the prediction log: {name: (kind, values)}.
    _typed: dict[str, tuple[str, Any]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    @property
    def n_values(self) -> int:
        return len(self.cells) * len(self.header)

    def columns(self, features: list[dict[str, str]]) -> Columns:
        import numpy as np

        from shared.prediction.table import column_positions

        names = [f["name"] for f in features]
        kinds = [kind(f.get("dtype", "number")) for f in features]
        # The header names every feature once and nothing else (refused otherwise).
        position = column_positions(self.header, names, ["body", "header"])
        if all(k == NUMBER for k in kinds):
            try:  # the common case: every cell a number, one numpy call for the table
                table = np.array(self.cells, dtype=np.float64)
            except ValueError:
                pass  # an empty cell or text: column by column below
            else:
                matrix = table[:, [position[n] for n in names]]
                self._remember(names, kinds, list(matrix.T))
                return Columns(names, kinds, list(matrix.T), self.n_rows, [], matrix)
        values: list[Any] = []
        errors: list[dict[str, Any]] = []
        for name, k in zip(names, kinds, strict=True):
            column = list(map(operator.itemgetter(position[name]), self.cells))
            if k == NUMBER:
                values.append(_numbers(column, name, errors))
            elif k == BOOL:
                values.append(_booleans(column, name, errors))
            else:
                values.append(column)
            if len(errors) >= MAX_ERRORS:
                break
        if errors:
            errors.sort(key=lambda e: e["loc"][1])
            first = errors[0]["loc"]
            raise ValidationFailed(
                f"Input does not match the model's features (first: row {first[1]},"
                f" column '{first[2][:100]}').",
                errors[:MAX_ERRORS],
            )
        self._remember(names, kinds, values)
        if all(k == NUMBER for k in kinds):
            matrix = np.column_stack(values)
            return Columns(names, kinds, list(matrix.T), self.n_rows, [], matrix)
        return Columns(names, kinds, values, self.n_rows, [])

    def _remember(self, names: list[str], kinds: list[str], values: list[Any]) -> None:
        # The first reading is the answering model's: a shadow model scores the same rows
        # later, in another thread, and its reading must not replace what gets logged.
        if not self._typed:
            self._typed.update(zip(names, zip(kinds, values, strict=True), strict=True))

    def as_records(self) -> list[dict[str, Any]]:
        """The rows as the model read them (numbers and booleans typed, a missing value
        null) once ``columns`` ran; before that, as sent."""
        if not self._typed:
            return [dict(zip(self.header, row, strict=True)) for row in self.cells]
        columns = [_json_values(k, v) for k, v in self._typed.values()]
        names = list(self._typed)
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _json_values(k: str, values: Any) -> list[Any]:
    if k == NUMBER:
        return [v if math.isfinite(v) else None for v in values.tolist()]
    if k == BOOL:
        return [None if math.isnan(v) else v == 1.0 for v in values.tolist()]
    return list(values)


def _numbers(column: list[str], name: str, errors: list[dict[str, Any]]) -> Any:
    import numpy as np

    try:
        return np.array(column, dtype=np.float64)
    except ValueError:
        pass  # an empty cell (missing) or a cell that is no number: look at each
    out = np.empty(len(column), dtype=np.float64)
    for row, cell in enumerate(column):
        if not cell.strip():
            out[row] = np.nan
            continue
        try:
            out[row] = float(cell)
        except ValueError:
            errors.append({"loc": ["body", row, name], "msg": "must be a number", "type": "type"})
            if len(errors) >= MAX_ERRORS:
                break
    return out


def _booleans(column: list[str], name: str, errors: list[dict[str, Any]]) -> Any:
    import numpy as np

    out = np.empty(len(column), dtype=np.float64)
    for row, cell in enumerate(column):
        text = cell.strip().lower()
        if text in _TRUE:
            out[row] = 1.0
        elif text in _FALSE:
            out[row] = 0.0
        elif text in _MISSING:
            out[row] = np.nan
        else:
            errors.append(
                {"loc": ["body", row, name], "msg": "must be true, false, 1 or 0", "type": "type"}
            )
            if len(errors) >= MAX_ERRORS:
                break
    return out


def parse_predict_csv(raw: bytes, query: Any, max_rows: int) -> OnlineRequest:
    """The request of a CSV body, its options from the query string; rows unchecked
    against the model (they need its features), their shape checked here."""
    options = options_from_query(query)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid("The CSV is not valid UTF-8.", ["body"], "encoding") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if not header or not any(name.strip() for name in header):
            raise _invalid(
                "A CSV body starts with a header row of column names.", ["body", "header"], "header"
            )
        cells: list[list[str]] = []
        for row in reader:
            if not row:
                continue  # a blank line (pandas skips them too)
            if len(row) != len(header):
                raise _invalid(
                    f"Row {len(cells)} has {len(row)} cells; every row holds one per column"
                    f" of the header ({len(header)}).",
                    ["body", len(cells)],
                    "ragged",
                    code="RAGGED_ROWS",
                )
            cells.append(row)
            if len(cells) > max_rows:
                raise PayloadTooLarge(
                    f"At most {max_rows} records per request; use batch scoring for more.",
                    code="TOO_MANY_RECORDS",
                )
    except csv.Error as exc:
        raise _invalid(f"The CSV cannot be read: {exc}.", ["body"], "csv") from None
    if not cells:
        raise _invalid("Send at least one row after the header.", ["body"], "rows")
    return OnlineRequest(CsvRows(header, cells), **options)
