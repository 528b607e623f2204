"""``POST /predict/{model}`` with ``Content-Type: text/csv``: the body MLflow's scoring
server takes besides JSON (pandas' CSV: a header row of column names, one row per record).

The cells stay text until the version's features are known; then
:func:`shared.prediction.table.csv_columns` reads them by the columnar table's rules (every
feature exactly once, no other column, a bad cell named by row and column). Here: the
body's shape (one cell per column in every row, ``RAGGED_ROWS``).

Bounded: the body's size is checked before this runs, and reading stops at the first row
past the records limit (a 16 MB body of one-character rows would otherwise become millions
of Python lists). The options (version, alias, partition, return_probabilities) come from
the query string.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

from shared.errors import PayloadTooLarge, ValidationFailed
from shared.prediction.body import OnlineRequest, options_from_query
from shared.prediction.runtime import BOOL, STRING, Columns


def _invalid(message: str, loc: list[Any], error: str, code: str | None = None) -> ValidationFailed:
    return ValidationFailed(message, [{"loc": loc, "msg": message, "type": error}], code=code)


@dataclass(frozen=True)
class CsvRows:
    """A CSV body's header and rows of text cells (every row as long as the header)."""

    header: list[str]
    cells: list[list[str]]
    # The answering model's reading of the rows, for the prediction log: a shadow model
    # reads them later, in another thread, and must not replace it (so: the first only).
    _read: list[Columns] = field(default_factory=list, compare=False, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.cells)

    @property
    def n_values(self) -> int:
        return len(self.cells) * len(self.header)

    def columns(self, features: list[dict[str, str]]) -> Columns:
        from shared.prediction.table import csv_columns

        cols = csv_columns(self.header, self.cells, features)
        if not self._read:
            self._read.append(cols)
        return cols

    def as_records(self) -> list[dict[str, Any]]:
        """The rows as the model read them (numbers and booleans typed, a missing value
        null) once ``columns`` ran; before that, as sent."""
        if not self._read:
            return [dict(zip(self.header, row, strict=True)) for row in self.cells]
        cols = self._read[0]
        values = [_json_values(k, v) for k, v in zip(cols.kinds, cols.values, strict=True)]
        return [dict(zip(cols.names, row, strict=True)) for row in zip(*values, strict=True)]


def _json_values(k: str, values: Any) -> list[Any]:
    if k == STRING:
        return list(values)
    floats = [float(v) for v in values]
    if k == BOOL:
        return [None if math.isnan(v) else v == 1.0 for v in floats]
    return [v if math.isfinite(v) else None for v in floats]


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
