"""Open Inference Protocol: tensors to columns, validation, outputs, error shape (no I/O)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from shared.errors import AppError, BadRequest, NotFound, PayloadTooLarge, ValidationFailed
from shared.prediction import oip
from shared.prediction.inputs import check_records

FEATURES = [
    {"name": "temp", "dtype": "float64"},
    {"name": "hot", "dtype": "bool"},
    {"name": "room", "dtype": "string"},
]
NUMERIC = [{"name": "a", "dtype": "number"}, {"name": "b", "dtype": "int64"}]


def tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> oip.V2RequestInput:
    return oip.V2RequestInput(name=name, shape=shape, datatype=datatype, data=data)


def error_of(exc: pytest.ExceptionInfo[AppError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


# --- tensor_values ---------------------------------------------------------------------------
def test_flat_and_nested_data_give_the_same_row_major_values() -> None:
    flat = oip.tensor_values(tensor("x", [2, 3], "FP32", [1, 2, 3, 4, 5, 6]), 0)
    nested = oip.tensor_values(tensor("x", [2, 3], "FP32", [[1, 2, 3], [4, 5, 6]]), 0)
    assert flat == nested == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(
    ("shape", "data"),
    [
        ([3], [1.0, 2.0]),  # too few
        ([2, 2], [1, 2, 3, 4, 5]),  # too many
        ([2, 2], [[1, 2], [3]]),  # ragged
        ([2], [[1], [2]]),  # nested deeper than the shape
        ([2, 1], [[1], 2]),  # a scalar where a row belongs
    ],
)
def test_element_count_and_nesting_must_match_the_shape(shape: list[int], data: list) -> None:
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.tensor_values(tensor("x", shape, "FP64", data), 4)
    assert error_of(exc) == (400, "TENSOR_SHAPE_MISMATCH")
    assert exc.value.extra["errors"][0]["loc"][:2] == ["inputs", 4]


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("FP32", [1.5, "2"]),
        ("FP32", [1.0, True]),
        ("INT64", [1, 2.5]),
        ("INT8", [1, 200]),
        ("UINT16", [2, -1]),
        ("BOOL", [True, 1]),
        ("BYTES", ["a", 3]),
    ],
)
def test_elements_must_match_the_datatype(datatype: str, data: list) -> None:
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.tensor_values(tensor("x", [2], datatype, data), 0)
    assert error_of(exc) == (400, "TENSOR_DATATYPE_MISMATCH")
    assert exc.value.extra["errors"][0]["loc"] == ["inputs", 0, "data", 1]
    assert datatype in exc.value.detail


@pytest.mark.parametrize(
    ("datatype", "data"),
    [
        ("INT8", [-128, 127, None]),
        ("UINT64", [0, 2**64 - 1]),
        ("FP64", [1, 2.5, None, 10**30]),
        ("BOOL", [True, False]),
        ("BYTES", ["a", ""]),
    ],
)
def test_elements_at_the_datatype_bounds_are_accepted(datatype: str, data: list) -> None:
    assert oip.tensor_values(tensor("x", [len(data)], datatype, data), 0) == data


@pytest.mark.parametrize(
    ("datatype", "data"),
    [("INT8", [None, 1, -129]), ("UINT8", [None, 256]), ("INT64", [None, 2**63])],
)
def test_integers_out_of_range_are_refused_beside_nulls(datatype: str, data: list) -> None:
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.tensor_values(tensor("x", [len(data)], datatype, data), 0)
    assert exc.value.extra["errors"][0]["loc"] == ["inputs", 0, "data", len(data) - 1]


def test_null_is_a_missing_value_unless_refused() -> None:
    assert oip.tensor_values(tensor("x", [2], "FP32", [None, 1]), 0) == [None, 1]
    with pytest.raises(oip.InvalidTensor):
        oip.tensor_values(tensor("x", [2], "FP32", [None, 1]), 0, allow_missing=False)


def test_unknown_datatype_is_refused_by_the_body_schema_as_400() -> None:
    body = json.dumps({"inputs": [{"name": "a", "shape": [1], "datatype": "FP8", "data": [1.0]}]})
    with pytest.raises(BadRequest) as exc, oip.v2_errors():
        try:
            oip.V2InferRequest.model_validate_json(body)
        except PydanticValidationError as err:
            raise ValidationFailed.from_pydantic(err) from None
    assert exc.value.status == 400 and exc.value.extra["error"]
    assert exc.value.extra["errors"][0]["loc"][:3] == ["inputs", 0, "datatype"]


# --- to_columns --------------------------------------------------------------------------------
RECORDS = [
    {"temp": 21.5, "hot": False, "room": "a"},
    {"temp": 30, "hot": True, "room": "b"},
    {"temp": None, "hot": None, "room": None},
]


def per_feature(second_shape: list[int] | None = None) -> list[oip.V2RequestInput]:
    return [
        tensor("room", [3], "BYTES", ["a", "b", None]),
        tensor("temp", second_shape or [3, 1], "FP64", [[21.5], [30], [None]]),
        tensor("hot", [3], "BOOL", [False, True, None]),
    ]


def same(a: Any, b: Any) -> bool:
    """Columns equality where NaN equals NaN."""
    return (
        a.names == b.names
        and a.kinds == b.kinds
        and a.n_rows == b.n_rows
        and all(
            all(x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in z)
            for z in (zip(c, d, strict=True) for c, d in zip(a.values, b.values, strict=True))
        )
    )


def test_per_feature_tensors_type_like_predict_records_in_feature_order() -> None:
    cols = oip.to_columns(per_feature(), FEATURES, max_rows=10)
    assert cols.names == ["temp", "hot", "room"]
    assert same(cols, check_records(RECORDS, FEATURES))


def test_one_2d_tensor_follows_the_feature_order() -> None:
    flat = tensor("input-0", [2, 2], "FP32", [1.0, 2, 3.0, 4])
    nested = tensor("anything", [2, 2], "INT64", [[1, 2], [3, 4]])
    expected = check_records([{"a": 1.0, "b": 2}, {"a": 3.0, "b": 4}], NUMERIC)
    assert same(oip.to_columns([flat], NUMERIC, 10), expected)
    assert same(oip.to_columns([nested], NUMERIC, 10), expected)


def test_a_2d_tensor_carries_a_bool_feature_as_0_or_1() -> None:
    features = [{"name": "x", "dtype": "number"}, {"name": "on", "dtype": "bool"}]
    cols = oip.to_columns([tensor("m", [2, 2], "FP32", [0.5, 1.0, 2.5, 0.0])], features, 10)
    assert [list(c) for c in cols.values] == [[0.5, 2.5], [1.0, 0.0]]
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.to_columns([tensor("m", [1, 2], "FP32", [0.5, 0.5])], features, 10)
    assert "'on'" in exc.value.detail


@pytest.mark.parametrize(
    ("inputs", "code", "words"),
    [
        ([tensor("m", [2, 3], "FP32", [0] * 6)], "TENSOR_SHAPE_MISMATCH", "3 columns"),
        ([tensor("a", [2], "FP32", [1, 2])], "MISSING_INPUT", "b"),
        (
            [
                tensor("a", [1], "FP32", [1]),
                tensor("b", [1], "FP32", [1]),
                tensor("c", [1], "FP32", [1]),
            ],
            "UNKNOWN_INPUT",
            "'c'",
        ),
        ([tensor("a", [2], "FP32", [1, 2]), tensor("b", [3], "FP32", [1, 2, 3])], None, "rows"),
        ([tensor("a", [1], "BYTES", ["1"]), tensor("b", [1], "FP32", [1])], None, "number"),
        ([tensor("a", [1, 1, 1], "FP32", [1]), tensor("b", [1], "FP32", [1])], None, "dimensions"),
        ([tensor("a", [1], "FP32", [1]), tensor("a", [1], "FP32", [1])], "INVALID_TENSOR", "twice"),
        ([tensor("a", [0], "FP32", []), tensor("b", [0], "FP32", [])], "INVALID_TENSOR", "one row"),
    ],
)
def test_bad_tensors_are_400_with_a_clear_message(
    inputs: list[oip.V2RequestInput], code: str | None, words: str
) -> None:
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.to_columns(inputs, NUMERIC, 10)
    assert exc.value.status == 400
    assert code is None or exc.value.code == code
    assert words in exc.value.detail


def test_string_feature_needs_bytes() -> None:
    inputs = per_feature()
    inputs[0] = tensor("room", [3], "INT64", [1, 2, 3])
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.to_columns(inputs, FEATURES, 10)
    assert exc.value.code == "TENSOR_DATATYPE_MISMATCH" and "BYTES" in exc.value.detail


def test_too_many_rows_is_413_before_the_data_is_read() -> None:
    with pytest.raises(PayloadTooLarge) as exc:
        oip.to_columns([tensor("m", [11, 2], "FP32", [])], NUMERIC, max_rows=10)
    assert error_of(exc) == (413, "TOO_MANY_RECORDS")


# --- outputs -----------------------------------------------------------------------------------
def by_name(outputs: list[oip.V2ResponseOutput]) -> dict[str, dict]:
    return {o.name: o.model_dump(exclude_none=True) for o in outputs}


def test_classification_outputs() -> None:
    result = {
        "predictions": ["setosa", "virginica"],
        "probabilities": [[0.9, 0.1], [0.2, 0.8]],
        "classes": ["setosa", "virginica"],
    }
    out = by_name(oip.outputs_of(result, "classification", None))
    assert out["label"] == {
        "name": "label",
        "shape": [2],
        "datatype": "BYTES",
        "data": ["setosa", "virginica"],
    }
    assert out["probabilities"]["shape"] == [2, 2]
    assert out["probabilities"]["datatype"] == "FP32"
    assert out["probabilities"]["data"] == [0.9, 0.1, 0.2, 0.8]  # row-major
    assert json.loads(out["probabilities"]["parameters"]["classes"]) == ["setosa", "virginica"]


def test_label_datatypes_follow_the_classes() -> None:
    ints = oip.outputs_of({"predictions": [0, 1]}, "classification", [0, 1])
    assert ints[0].datatype == "INT64" and ints[0].data == [0, 1]
    bools = oip.outputs_of({"predictions": [0, 1]}, "classification", [False, True])
    assert bools[0].datatype == "BOOL" and bools[0].data == [False, True]


def test_anomaly_and_regression_outputs() -> None:
    anomaly = by_name(
        oip.outputs_of({"predictions": [1, -1], "scores": [0.1, -0.2]}, "anomaly", None)
    )
    assert anomaly["label"]["datatype"] == "INT64" and anomaly["scores"]["datatype"] == "FP32"
    assert anomaly["scores"]["data"] == [0.1, -0.2]
    regression = oip.outputs_of({"predictions": [1.5, 2.5]}, "regression", None)
    assert [(o.name, o.datatype, o.shape) for o in regression] == [("predictions", "FP64", [2])]


def test_outputs_are_selected_in_the_requested_order() -> None:
    available = oip.outputs_of(
        {"predictions": [1], "probabilities": [[0.0, 1.0]], "classes": [0, 1]},
        "classification",
        None,
    )
    wanted = [oip.V2RequestOutput(name=n) for n in ("probabilities", "label", "probabilities")]
    assert [o.name for o in oip.select_outputs(available, wanted)] == ["probabilities", "label"]
    assert oip.select_outputs(available, None) == available
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.select_outputs(available, [oip.V2RequestOutput(name="scores")])
    assert error_of(exc) == (400, "UNKNOWN_OUTPUT")
    assert "label, probabilities" in exc.value.detail


# --- raw ONNX feed (a stand-in session) -----------------------------------------------------
def node(name: str, type_: str, shape: list[Any]) -> SimpleNamespace:
    return SimpleNamespace(name=name, type=type_, shape=shape)


class FakeSession:
    def __init__(self, inputs: list[SimpleNamespace]) -> None:
        self.inputs = inputs

    def get_inputs(self) -> list[SimpleNamespace]:
        return self.inputs


def test_raw_feed_matches_a_lone_tensor_and_checks_shape_and_type() -> None:
    import numpy as np

    session = FakeSession([node("X", "tensor(float)", [None, 3])])
    feed = oip.raw_feed(session, [tensor("whatever", [2, 3], "FP64", [[1, 2, 3], [4, 5, 6]])], 10)
    assert feed["X"].dtype == np.float32 and feed["X"].shape == (2, 3)
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.raw_feed(session, [tensor("X", [2, 2], "FP32", [1, 2, 3, 4])], 10)
    assert exc.value.code == "TENSOR_SHAPE_MISMATCH"
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.raw_feed(session, [tensor("X", [1, 3], "BYTES", ["a", "b", "c"])], 10)
    assert exc.value.code == "TENSOR_DATATYPE_MISMATCH"
    two = FakeSession([node("a", "tensor(int64)", [None]), node("b", "tensor(string)", [None])])
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.raw_feed(two, [tensor("a", [1], "INT64", [1])], 10)
    assert exc.value.code == "MISSING_INPUT" and "missing: b" in exc.value.detail


# --- error shape, readiness ---------------------------------------------------------------------
def test_v2_errors_turn_422_into_400_and_add_the_error_member() -> None:
    with pytest.raises(BadRequest) as exc, oip.v2_errors():
        raise ValidationFailed("Send 'partition'.", [{"loc": ["partition"]}])
    assert exc.value.status == 400 and exc.value.extra["error"] == "Send 'partition'."
    assert exc.value.extra["errors"] == [{"loc": ["partition"]}]
    with pytest.raises(NotFound) as missing, oip.v2_errors():
        raise NotFound("No model named 'x'.", code="MODEL_NOT_FOUND")
    assert missing.value.status == 404 and missing.value.extra["error"] == "No model named 'x'."


def test_binary_tensor_extension_is_refused_clearly() -> None:
    oip.refuse_binary(None)
    with pytest.raises(oip.InvalidTensor) as exc:
        oip.refuse_binary("123")
    assert exc.value.code == "BINARY_DATA_UNSUPPORTED" and "binary_data=False" in exc.value.detail


class FakeLoader:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def load(self, name: str, version: int | None = None, alias: str | None = None) -> object:
        if self.error:
            raise self.error
        return object()


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (None, 200, None),
        (NotFound("gone", code="MODEL_NOT_FOUND"), 404, "MODEL_NOT_FOUND"),
        (AppError("bad hash", code="MODEL_INTEGRITY_FAILED"), 503, "MODEL_NOT_READY"),
        (RuntimeError("corrupt onnx"), 503, "MODEL_NOT_READY"),
    ],
)
def test_model_ready(error: Exception | None, status: int, code: str | None) -> None:
    predictor = SimpleNamespace(loader=FakeLoader(error), max_records=10)
    service = oip.InferenceService(predictor, registry=None)  # type: ignore[arg-type]
    if error is None:
        assert service.ready("m", 1) == oip.V2ModelReady(name="m", ready=True)
        return
    with pytest.raises(AppError) as exc:
        service.ready("m", 1)
    assert error_of(exc) == (status, code)


def test_server_not_ready_when_storage_cannot_be_built() -> None:
    from shared.settings import Settings

    def broken() -> Any:
        raise ValueError("no connection string")

    with pytest.raises(oip.ServerNotReady) as exc:
        oip.server_ready(Settings(), broken, broken)
    assert exc.value.status == 503 and exc.value.extra["ready"] is False
