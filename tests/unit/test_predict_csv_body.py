"""Reading a CSV prediction body (shared.prediction.csv_body), without storage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.errors import PayloadTooLarge, ValidationFailed
from shared.prediction.csv_body import parse_predict_csv

NUMBERS = [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}]
MIXED = [
    {"name": "x", "dtype": "float64"},
    {"name": "city", "dtype": "object"},
    {"name": "ok", "dtype": "bool"},
]


def test_numbers_become_one_matrix_in_the_features_order() -> None:
    request = parse_predict_csv(b"b,a\n1,0.5\n2,1e3\n", {}, 100)
    cols = request.rows.columns(NUMBERS)
    assert cols.names == ["a", "b"] and cols.n_rows == 2
    assert np.array_equal(cols.matrix, np.array([[0.5, 1.0], [1000.0, 2.0]]))


def test_empty_cells_are_missing_and_each_kind_is_read_as_such() -> None:
    request = parse_predict_csv(b'x,city,ok\n1.5,"a, b",TRUE\n,lyon,0\n2,,\n', {}, 100)
    cols = request.rows.columns(MIXED)
    x, city, ok = cols.values
    assert x[0] == 1.5 and math.isnan(x[1]) and x[2] == 2.0
    assert city == ["a, b", "lyon", ""]
    assert ok[0] == 1.0 and ok[1] == 0.0 and math.isnan(ok[2])
    assert request.rows.as_records() == [
        {"x": 1.5, "city": "a, b", "ok": True},
        {"x": None, "city": "lyon", "ok": False},
        {"x": 2.0, "city": "", "ok": None},
    ]


def test_the_logged_rows_are_the_answering_models_reading() -> None:
    """A shadow model reads the same rows afterwards; what is logged stays the first."""
    rows = parse_predict_csv(b"a,b\n1,2\n", {}, 100).rows
    assert rows.as_records() == [{"a": "1", "b": "2"}]  # before any model read them: as sent
    rows.columns(NUMBERS)
    rows.columns([{"name": "a", "dtype": "object"}, {"name": "b", "dtype": "object"}])
    assert rows.as_records() == [{"a": 1.0, "b": 2.0}]


def test_bad_cells_name_their_row_and_column_up_to_twenty() -> None:
    text = "a,b\n" + "1,2\n" + "x,2\n" * 30
    rows = parse_predict_csv(text.encode(), {}, 100).rows
    with pytest.raises(ValidationFailed) as caught:
        rows.columns(NUMBERS)
    errors = caught.value.extra["errors"]
    assert len(errors) == 20 and errors[0]["loc"] == ["body", 1, "a"]
    bools = parse_predict_csv(b"x,city,ok\n1,p,yes\n", {}, 100).rows
    with pytest.raises(ValidationFailed) as caught:
        bools.columns(MIXED)
    assert caught.value.extra["errors"][0]["loc"] == ["body", 0, "ok"]


def test_options_come_from_the_query_string() -> None:
    request = parse_predict_csv(
        b"a,b\n1,2\n", {"version": "3", "partition": "101", "return_probabilities": "true"}, 10
    )
    assert (request.version, request.partition, request.return_probabilities) == (3, "101", True)
    with pytest.raises(ValidationFailed):
        parse_predict_csv(b"a,b\n1,2\n", {"alias": "not an alias!"}, 10)


@pytest.mark.parametrize(
    "raw",
    [b"", b"\n\n", b"a,b\n", b"a,b\n1,2,3\n", b'a,b\n1,"2\n', b"a,b\n\xff,1\n"],
)
def test_unreadable_bodies_are_422(raw: bytes) -> None:
    with pytest.raises(ValidationFailed):
        parse_predict_csv(raw, {}, 10)


def test_reading_stops_past_the_row_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_predict_csv(b"a\n" + b"1\n" * 11, {}, 10)
    assert parse_predict_csv(b"a\n" + b"1\n" * 10, {}, 10).rows.n_rows == 10
