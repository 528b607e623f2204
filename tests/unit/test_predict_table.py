"""The vectorised validator of online rows (shared.prediction.table) and the body decoder
(shared.prediction.body): the same Columns and the same refusals as the per-record path."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from shared.errors import ValidationFailed
from shared.prediction.body import ColumnMapRows, RecordRows, TableRows, parse_predict_body
from shared.prediction.inputs import check_records
from shared.prediction.table import column_map_columns, records_columns, table_columns

NUMERIC = [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "int64"}]
MIXED = [
    {"name": "x", "dtype": "float64"},
    {"name": "city", "dtype": "string"},
    {"name": "flag", "dtype": "bool"},
]


def as_lists(cols) -> list[list]:
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in c] for c in cols]


def values(cols) -> list[list]:
    return as_lists([list(np.asarray(c).tolist()) for c in cols.values])


def refusal(call) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        call()
    return info.value


# --- records: the fast path builds exactly what check_records builds ----------------------
@pytest.mark.parametrize(
    "records",
    [
        [{"a": 1.5, "b": 2}, {"a": None, "b": -3}],
        [{"a": 1, "b": 2, "id": "r-1"}, {"b": 0.5, "a": 2e300, "ts": 1}],
        [{"a": 2**70, "b": 0}],
    ],
)
def test_numeric_records_give_the_columns_of_the_per_record_path(records) -> None:
    fast, slow = records_columns(records, NUMERIC), check_records(records, NUMERIC)
    assert values(fast) == as_lists(slow.values)
    assert fast.ignored_fields == slow.ignored_fields and fast.n_rows == slow.n_rows
    assert all(np.asarray(c).dtype == np.float64 for c in fast.values)


@pytest.mark.parametrize(
    ("records", "loc"),
    [
        ([{"a": 1.0, "b": 2}, {"a": 1.0}], ["records", 1, "b"]),
        ([{"a": 1.0, "b": True}], ["records", 0, "b"]),  # a boolean is no number
        ([{"a": "1.5", "b": 2}], ["records", 0, "a"]),  # nor is numeric text
        ([{"a": 10**400, "b": 2}], ["records", 0, "a"]),  # beyond float range
        ([{"a": [1], "b": 2}], ["records", 0, "a"]),
        ([{"a": 1, "b": 2}, 7], ["records", 1]),
    ],
)
def test_bad_records_are_refused_as_the_per_record_path_does(records, loc) -> None:
    error = refusal(lambda: records_columns(records, NUMERIC))
    assert error.extra["errors"][0]["loc"] == loc
    assert refusal(lambda: check_records(records, NUMERIC)).extra == error.extra


def test_records_with_text_and_boolean_features_keep_the_per_record_rules() -> None:
    records = [{"x": 1, "city": "Paris", "flag": True}, {"x": None, "city": None, "flag": 0}]
    cols = records_columns(records, MIXED)
    assert as_lists(cols.values) == [[1.0, None], ["Paris", ""], [1.0, 0.0]]


# --- a columnar table ---------------------------------------------------------------------
def test_a_table_gives_the_columns_of_the_same_records_whatever_the_column_order() -> None:
    records = [{"a": 1.5, "b": 2}, {"a": None, "b": -3}]
    cols = table_columns(["b", "a"], [[2, 1.5], [-3, None]], NUMERIC)
    assert cols.names == ["a", "b"] and cols.n_rows == 2 and cols.ignored_fields == []
    assert values(cols) == as_lists(check_records(records, NUMERIC).values)


def test_a_mixed_table_is_checked_column_by_column() -> None:
    cols = table_columns(
        ["flag", "city", "x"], [[True, "Paris", 1], [None, None, 2.5], [1, "Oslo", None]], MIXED
    )
    assert as_lists(cols.values) == [[1.0, 2.5, None], ["Paris", "", "Oslo"], [1.0, None, 1.0]]


@pytest.mark.parametrize(
    ("columns", "data", "code", "loc"),
    [
        (["a", "b"], [[1, 2], [1]], "RAGGED_ROWS", ["data", 1]),
        (["a", "b"], [[1, 2], {"a": 1}], "RAGGED_ROWS", ["data", 1]),
        (["a", "b", "c"], [[1, 2, 3]], "UNKNOWN_COLUMN", ["columns", 2]),
        (["a"], [[1]], "MISSING_COLUMN", ["columns", "b"]),
        (["a", "a", "b"], [[1, 1, 2]], "DUPLICATE_COLUMN", ["columns", 1]),
        (["a", 3], [[1, 2]], "VALIDATION_FAILED", ["columns", 1]),
        ([], [[1, 2]], "VALIDATION_FAILED", ["columns"]),
        (["a", "b"], [], "VALIDATION_FAILED", ["data"]),
        (["a", "b"], [[1, 2], [3, "x"]], "VALIDATION_FAILED", ["data", 1, "b"]),
        (["a", "b"], [[1, 2], [False, 4]], "VALIDATION_FAILED", ["data", 1, "a"]),
        (["b", "a"], [[1, 2], [3, 10**400]], "VALIDATION_FAILED", ["data", 1, "a"]),
    ],
)
def test_bad_tables_are_refused_naming_the_column_and_row(columns, data, code, loc) -> None:
    error = refusal(lambda: table_columns(columns, data, NUMERIC, ("dataframe_split",)))
    assert error.code == code
    assert error.extra["errors"][0]["loc"] == ["dataframe_split", *loc]
    if len(loc) == 3:  # a value: the message names its row and column
        assert f"row {loc[1]}, column '{loc[2]}'" in error.detail


def test_type_errors_are_reported_by_row_and_at_most_twenty() -> None:
    data = [["x", "y"]] * 50
    error = refusal(lambda: table_columns(["a", "b"], data, NUMERIC))
    locs = [e["loc"] for e in error.extra["errors"]]
    assert len(locs) == 20 and locs[0] == ["data", 0, "a"]
    assert locs == sorted(locs, key=lambda loc: loc[1])


def test_an_unknown_column_name_is_cut_in_the_message() -> None:
    error = refusal(lambda: table_columns(["a", "b", "z" * 100_000], [[1, 2, 3]], NUMERIC))
    assert len(error.detail) < 1000


# --- the body decoder -----------------------------------------------------------------------
def encoded(body) -> bytes:
    return json.dumps(body).encode()


def test_every_body_form_is_recognised_with_its_options() -> None:
    rows = {"columns": ["a", "b"], "data": [[1, 2]]}
    request = parse_predict_body(encoded({**rows, "version": 3, "return_probabilities": True}))
    assert request.rows == TableRows(["a", "b"], [[1, 2]], ())
    assert request.version == 3 and request.return_probabilities
    request = parse_predict_body(encoded({"dataframe_split": {**rows, "index": [0]}}))
    assert request.rows == TableRows(["a", "b"], [[1, 2]], ("dataframe_split",))
    request = parse_predict_body(encoded({"dataframe_records": [{"a": 1}], "alias": "blue"}))
    assert request.rows == RecordRows([{"a": 1}], "dataframe_records")
    assert request.alias == "blue"
    request = parse_predict_body(encoded({"records": [{"a": 1}], "unknown_member": 1}))
    assert request.rows == RecordRows([{"a": 1}])
    request = parse_predict_body(encoded({"instances": [[1, 2]], "partition": "r1"}))
    assert request.rows == RecordRows([[1, 2]], "instances") and request.partition == "r1"
    request = parse_predict_body(encoded({"inputs": [{"a": 1}]}))
    assert request.rows == RecordRows([{"a": 1}], "inputs")
    request = parse_predict_body(encoded({"inputs": {"a": [1, 2], "b": [3, 4]}}))
    assert request.rows == ColumnMapRows({"a": [1, 2], "b": [3, 4]})
    assert request.rows.n_rows == 2 and request.rows.n_values == 4
    assert request.rows.as_records() == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_inputs_by_column_become_the_same_columns_as_a_table() -> None:
    mapping = {"b": [3.0, None], "a": [1, 2]}
    got = column_map_columns(mapping, NUMERIC[:2])
    want = table_columns(["a", "b"], [[1, 3.0], [2, None]], NUMERIC[:2])
    assert got.names == want.names and got.n_rows == want.n_rows == 2
    assert np.array_equal(got.matrix, want.matrix, equal_nan=True)


def test_nan_and_infinity_tokens_are_still_read() -> None:
    request = parse_predict_body(b'{"records": [{"a": NaN, "b": Infinity}]}')
    record = request.rows.records[0]
    assert math.isnan(record["a"]) and record["b"] == math.inf


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"[1, 2]",
        b'"records"',
        b"\xff\xfe",
        b"[" * 100_000,
        encoded({}),
        encoded({"records": [{"a": 1}], "columns": ["a"], "data": [[1]]}),
        encoded({"data": [[1]]}),
        encoded({"columns": ["a"]}),
        encoded({"records": []}),
        encoded({"records": {"a": 1}}),
        encoded({"dataframe_split": [["a"], [[1]]]}),
        encoded({"dataframe_split": {"columns": ["a"], "data": 5}}),
        encoded({"records": [{"a": 1}], "version": 0}),
        encoded({"records": [{"a": 1}], "alias": "../x"}),
    ],
)
def test_bad_bodies_are_422_problems(raw) -> None:
    error = refusal(lambda: parse_predict_body(raw))
    assert error.status == 422 and error.extra["errors"]


# --- the ONNX feed of validated rows -------------------------------------------------------
class _Spec:
    def __init__(self, name: str, type_: str) -> None:
        self.name, self.type = name, type_


class _Inputs:
    """What onnx_feed reads of a session: its inputs' names and element types."""

    def __init__(self, *specs: _Spec) -> None:
        self.specs = list(specs)

    def get_inputs(self) -> list[_Spec]:
        return self.specs


@pytest.mark.parametrize(
    "session",
    [
        _Inputs(_Spec("a", "tensor(float)"), _Spec("b", "tensor(float)")),
        _Inputs(_Spec("a", "tensor(double)"), _Spec("b", "tensor(double)")),
        _Inputs(_Spec("a", "tensor(float)"), _Spec("b", "tensor(int64)")),  # per column
        _Inputs(_Spec("X", "tensor(float)")),  # one [n, k] matrix
    ],
)
def test_the_feed_cast_from_the_matrix_is_the_feed_cast_per_column(session) -> None:
    from dataclasses import replace

    from shared.prediction.runtime import onnx_feed

    cols = table_columns(["b", "a"], [[2, 1.5], [-3, None], [7, 0.25]], NUMERIC)
    assert cols.matrix is not None and cols.matrix.shape == (3, 2)
    fast, slow = onnx_feed(session, cols), onnx_feed(session, replace(cols, matrix=None))
    assert fast.keys() == slow.keys()
    for name in fast:
        assert fast[name].dtype == slow[name].dtype and fast[name].shape == slow[name].shape
        np.testing.assert_array_equal(fast[name], slow[name])
