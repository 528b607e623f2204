"""Tensors in (V2 inputs -> the predictor's Columns, or a raw ONNX feed) and tensors out."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from shared.errors import PayloadTooLarge
from shared.prediction.oip.errors import InvalidTensor
from shared.prediction.oip.schemas import (
    V2RequestInput,
    V2RequestOutput,
    V2ResponseOutput,
    V2TensorMetadata,
)

if TYPE_CHECKING:
    from shared.prediction.runtime import Columns

MAX_ERRORS = 20  # like check_records: enough to fix a request, not a wall of text
_INT_BOUNDS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_FLOATS = frozenset({"FP16", "FP32", "FP64"})
NUMERIC = frozenset(_INT_BOUNDS) | _FLOATS

_ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


# --- tensors in ----------------------------------------------------------------------------
def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_string(v: Any) -> bool:
    return isinstance(v, str)


def _element_check(datatype: str) -> tuple[Callable[[Any], bool], str]:
    """The element test of a datatype and how to name it in an error."""
    if datatype == "BOOL":
        return _is_bool, "a boolean"
    if datatype == "BYTES":
        return _is_string, "a string"
    if datatype in _FLOATS:
        return _is_number, "a number"
    lo, hi = _INT_BOUNDS[datatype]

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi

    return is_int, f"an integer in [{lo}, {hi}]"


_NUMBER_TYPES = frozenset({int, float})
_NONE = type(None)


def _all_fit(values: list[Any], datatype: str, allow_missing: bool) -> bool:
    """True when every element fits the datatype, checked without a Python step per
    element (the types are collected by C-level calls); False means "look closer"."""
    types = set(map(type, values))
    if allow_missing:
        types.discard(_NONE)
    if datatype in _FLOATS:
        return types <= _NUMBER_TYPES
    if datatype == "BOOL":
        return types <= {bool}
    if datatype == "BYTES":
        return types <= {str}
    if not types <= {int}:
        return False
    present = [v for v in values if v is not None] if _NONE in set(map(type, values)) else values
    lo, hi = _INT_BOUNDS[datatype]
    return not present or (lo <= min(present) and max(present) <= hi)


def tensor_values(tensor: V2RequestInput, index: int, allow_missing: bool = True) -> list[Any]:
    """The tensor's elements, flat and row-major, after checking count, nesting and type."""
    shape, data = tensor.shape, tensor.data
    if any(d < 0 for d in shape):
        raise InvalidTensor(
            f"Input '{tensor.name}' has a negative dimension in shape {shape}.",
            ["inputs", index, "shape"],
            code="TENSOR_SHAPE_MISMATCH",
        )
    expected = math.prod(shape)
    if data and isinstance(data[0], list):
        # Nested: every level must have exactly the size its dimension declares.
        level: list[Any] = [data]
        for depth, size in enumerate(shape):
            following: list[Any] = []
            for node in level:
                if not isinstance(node, list) or len(node) != size:
                    got = len(node) if isinstance(node, list) else "a scalar"
                    raise InvalidTensor(
                        f"Input '{tensor.name}': nested data does not match shape {shape}"
                        f" (dimension {depth} should hold {size} elements, found {got}).",
                        ["inputs", index, "data"],
                        code="TENSOR_SHAPE_MISMATCH",
                    )
                following.extend(node)
            level = following
        if any(isinstance(v, list) for v in level):
            raise InvalidTensor(
                f"Input '{tensor.name}': data is nested deeper than shape {shape}.",
                ["inputs", index, "data"],
                code="TENSOR_SHAPE_MISMATCH",
            )
        values = level
    else:
        values = data
    if len(values) != expected:
        raise InvalidTensor(
            f"Input '{tensor.name}' has shape {shape} ({expected} elements) but its data"
            f" holds {len(values)}.",
            ["inputs", index, "data"],
            code="TENSOR_SHAPE_MISMATCH",
        )
    if _all_fit(values, tensor.datatype, allow_missing):
        return values
    ok, expected_type = _element_check(tensor.datatype)
    errors: list[dict[str, Any]] = []
    for position, value in enumerate(values):
        if (value is None and allow_missing) or (value is not None and ok(value)):
            continue
        errors.append(
            {
                "loc": ["inputs", index, "data", position],
                "msg": f"must be {expected_type} ({tensor.datatype})",
                "type": "datatype",
            }
        )
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        position = errors[0]["loc"][3]
        raise InvalidTensor(
            f"Input '{tensor.name}' is {tensor.datatype} but element {position} is"
            f" {type(values[position]).__name__}.",
            code="TENSOR_DATATYPE_MISMATCH",
            errors=errors,
        )
    return values


def _rows(inputs: Sequence[V2RequestInput], max_rows: int) -> int:
    """The batch size all inputs agree on; 413 beyond MAX_PREDICT_RECORDS, like /predict."""
    rows = inputs[0].shape[0]
    for index, tensor in enumerate(inputs):
        if tensor.shape[0] != rows:
            raise InvalidTensor(
                f"Inputs disagree on the number of rows: '{inputs[0].name}' has {rows},"
                f" '{tensor.name}' has {tensor.shape[0]}.",
                ["inputs", index, "shape"],
                code="TENSOR_SHAPE_MISMATCH",
            )
    if rows > max_rows:
        raise PayloadTooLarge(
            f"At most {max_rows} rows per request; use batch scoring for more.",
            code="TOO_MANY_RECORDS",
        )
    if rows == 0:
        raise InvalidTensor("Send at least one row.", ["inputs", 0, "shape"])
    return rows


def _column(
    values: list[Any], datatype: str, feature: str, kind: str, loc: list[Any], step: int = 1
) -> list[Any]:
    """One Columns column, typed exactly as check_records types a /predict field."""
    if step > 1:
        start = loc[-1]
        values = values[start::step]
    if kind == "string":
        if datatype != "BYTES":
            raise _kind_mismatch(feature, "a string", "BYTES", datatype, loc)
        return ["" if v is None else v for v in values]
    if kind == "bool":
        if datatype == "BOOL":
            return _floats(values, feature, loc)
        if datatype in NUMERIC:
            # 0/1 numbers, as /predict accepts; an FP 2-D tensor may carry a bool column.
            bad = next((i for i, v in enumerate(values) if v is not None and v not in (0, 1)), -1)
            if bad < 0:
                return _floats(values, feature, loc)
            raise InvalidTensor(
                f"Feature '{feature}' is a boolean: row {bad} must be 0 or 1.",
                [*loc, bad],
                code="TENSOR_DATATYPE_MISMATCH",
            )
        raise _kind_mismatch(feature, "a boolean", "BOOL (or 0/1 numbers)", datatype, loc)
    if datatype not in NUMERIC:
        raise _kind_mismatch(feature, "a number", "INT*, UINT* or FP*", datatype, loc)
    return _floats(values, feature, loc)


def _floats(values: list[Any], feature: str, loc: list[Any]) -> Any:
    """float64 array, null -> NaN (the values' types were checked: numbers, booleans)."""
    import numpy as np

    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:  # a 400-digit integer: no float holds it
        raise InvalidTensor(
            f"Feature '{feature}' has a number too large for a float.",
            loc,
            code="TENSOR_VALUE_OUT_OF_RANGE",
        ) from None


def _kind_mismatch(feature: str, what: str, send: str, got: str, loc: list[Any]) -> InvalidTensor:
    return InvalidTensor(
        f"Feature '{feature}' is {what}: send it as {send}, not {got}.",
        loc,
        code="TENSOR_DATATYPE_MISMATCH",
    )


def to_columns(
    inputs: Sequence[V2RequestInput], features: Sequence[dict[str, str]], max_rows: int
) -> Columns:
    """Per-feature tensors or one [n, k] tensor -> the Columns POST /predict would build."""
    from shared.prediction.runtime import Columns, kind

    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    for index, tensor in enumerate(inputs):
        if len(tensor.shape) > 2:
            raise InvalidTensor(
                f"Input '{tensor.name}' has {len(tensor.shape)} dimensions; send [n], [n, 1]"
                " per feature or one [n, k] tensor.",
                ["inputs", index, "shape"],
                code="TENSOR_SHAPE_MISMATCH",
            )
    rows = _rows(inputs, max_rows)
    first = inputs[0]
    # One 2-D tensor is the matrix form, unless it is a [n, 1] tensor named after a feature.
    if (
        len(inputs) == 1
        and len(first.shape) == 2
        and not (first.shape[1] == 1 and first.name in names)
    ):
        if first.shape[1] != len(names):
            raise InvalidTensor(
                f"Input '{first.name}' has {first.shape[1]} columns; the model takes"
                f" {len(names)} features in this order: {', '.join(names)}.",
                ["inputs", 0, "shape"],
                code="TENSOR_SHAPE_MISMATCH",
            )
        values = tensor_values(first, 0)
        columns = [
            _column(values, first.datatype, name, k, ["inputs", 0, "data", j], step=len(names))
            for j, (name, k) in enumerate(zip(names, kinds, strict=True))
        ]
        return Columns(names, kinds, columns, rows, [])
    by_name: dict[str, int] = {}
    for index, tensor in enumerate(inputs):
        if len(tensor.shape) == 2 and tensor.shape[1] != 1:
            raise InvalidTensor(
                f"Input '{tensor.name}' has shape {tensor.shape}; a per-feature tensor is [n]"
                " or [n, 1] (or send one [n, k] tensor alone).",
                ["inputs", index, "shape"],
                code="TENSOR_SHAPE_MISMATCH",
            )
        if tensor.name in by_name:
            raise InvalidTensor(f"Input '{tensor.name}' is sent twice.", ["inputs", index, "name"])
        if tensor.name not in names:
            raise InvalidTensor(
                f"Input '{tensor.name}' is not a feature of this model; its inputs are:"
                f" {', '.join(names)}.",
                ["inputs", index, "name"],
                code="UNKNOWN_INPUT",
            )
        by_name[tensor.name] = index
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InvalidTensor(
            f"Missing input for feature{'s' if len(missing) > 1 else ''}:"
            f" {', '.join(missing[:MAX_ERRORS])}.",
            code="MISSING_INPUT",
            errors=[
                {"loc": ["inputs", n], "msg": "missing feature", "type": "missing"}
                for n in missing[:MAX_ERRORS]
            ],
        )
    columns = []
    for name, k in zip(names, kinds, strict=True):
        index = by_name[name]
        tensor = inputs[index]
        values = tensor_values(tensor, index)
        columns.append(_column(values, tensor.datatype, name, k, ["inputs", index, "data"]))
    return Columns(names, kinds, columns, rows, [])


# --- tensors out --------------------------------------------------------------------------
def label_datatype(values: Sequence[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if values and all(_is_number(v) for v in values):
        return "FP64"
    return "BYTES"


def outputs_of(
    result: dict[str, Any], task: str | None, classes: list[Any] | None
) -> list[V2ResponseOutput]:
    """The engine's result (predictions, probabilities/classes or scores) as V2 tensors."""
    labels = list(result["predictions"])
    n = len(labels)
    if task == "anomaly" or "scores" in result:
        return [
            V2ResponseOutput(name="label", shape=[n], datatype="INT64", data=labels),
            V2ResponseOutput(name="scores", shape=[n], datatype="FP32", data=result["scores"]),
        ]
    if task == "classification" or "probabilities" in result:
        classes = result.get("classes") or classes
        if classes and all(isinstance(c, bool) for c in classes):
            labels = [bool(v) for v in labels]  # ONNX gives bool classes back as 0/1
        datatype = label_datatype(labels)
        if datatype == "BYTES":
            labels = [v if isinstance(v, str) else str(v) for v in labels]
        outputs = [V2ResponseOutput(name="label", shape=[n], datatype=datatype, data=labels)]
        probabilities = result.get("probabilities")
        if probabilities is not None:
            width = len(probabilities[0]) if probabilities else len(classes or [])
            outputs.append(
                V2ResponseOutput(
                    name="probabilities",
                    shape=[n, width],
                    datatype="FP32",
                    parameters={"classes": json.dumps(classes)} if classes else None,
                    data=[p for row in probabilities for p in row],
                )
            )
        return outputs
    return [V2ResponseOutput(name="predictions", shape=[n], datatype="FP64", data=labels)]


def select_outputs(
    available: list[V2ResponseOutput], requested: Sequence[V2RequestOutput] | None
) -> list[V2ResponseOutput]:
    """The requested outputs in the requested order; all of them when none is named."""
    if not requested:
        return available
    by_name = {o.name: o for o in available}
    chosen: dict[str, V2ResponseOutput] = {}
    for index, wanted in enumerate(requested):
        if wanted.name not in by_name:
            raise InvalidTensor(
                f"Unknown output '{wanted.name}'; this model answers:"
                f" {', '.join(by_name) or 'nothing'}.",
                ["outputs", index, "name"],
                code="UNKNOWN_OUTPUT",
            )
        chosen.setdefault(wanted.name, by_name[wanted.name])
    return list(chosen.values())


# --- raw ONNX (no feature schema) ----------------------------------------------------------
def _dims(shape: Sequence[Any]) -> list[int]:
    return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def onnx_tensors(nodes: Sequence[Any]) -> list[V2TensorMetadata]:
    return [
        V2TensorMetadata(name=n.name, datatype=_ONNX_DATATYPES[n.type], shape=_dims(n.shape))
        for n in nodes
        if n.type in _ONNX_DATATYPES  # sequences/maps (ZipMap) are not tensors
    ]


def numpy_datatype(array: Any) -> str:
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'INT' if kind == 'i' else 'UINT'}{size * 8}"
    if kind == "f":
        return f"FP{size * 8}"
    return "BYTES"


def raw_feed(session: Any, inputs: Sequence[V2RequestInput], max_rows: int) -> dict[str, Any]:
    """The session's feed from tensors named after its inputs (a lone pair matches anyway)."""
    import numpy as np

    specs = session.get_inputs()
    if len(specs) == 1 and len(inputs) == 1:
        pairs = [(specs[0], 0)]
    else:
        index_of = {t.name: i for i, t in enumerate(inputs)}
        wanted = {s.name for s in specs}
        unknown = [t.name for t in inputs if t.name not in wanted]
        missing = [s.name for s in specs if s.name not in index_of]
        if unknown or missing:
            raise InvalidTensor(
                f"The model's inputs are {', '.join(sorted(wanted))}"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + ".",
                ["inputs"],
                code="MISSING_INPUT" if missing else "UNKNOWN_INPUT",
            )
        pairs = [(s, index_of[s.name]) for s in specs]
    _rows([inputs[i] for _, i in pairs], max_rows)
    feed = {}
    for spec, index in pairs:
        tensor = inputs[index]
        expected = _ONNX_DATATYPES.get(spec.type)
        # Any numeric datatype fits a numeric input (numpy casts, as Triton's JSON path does).
        compatible = tensor.datatype == expected or (
            expected in NUMERIC and tensor.datatype in NUMERIC
        )
        if expected is None or not compatible:
            raise InvalidTensor(
                f"Input '{spec.name}' is {expected or spec.type}; {tensor.datatype} does not fit.",
                ["inputs", index, "datatype"],
                code="TENSOR_DATATYPE_MISMATCH",
            )
        declared = _dims(spec.shape)
        if len(declared) != len(tensor.shape) or any(
            d != -1 and d != got for d, got in zip(declared, tensor.shape, strict=True)
        ):
            raise InvalidTensor(
                f"Input '{spec.name}' takes shape {declared}; got {tensor.shape}.",
                ["inputs", index, "shape"],
                code="TENSOR_SHAPE_MISMATCH",
            )
        values = tensor_values(tensor, index, allow_missing=False)
        dtype = object if expected == "BYTES" else np.dtype(_numpy_name(expected))
        feed[spec.name] = np.asarray(values, dtype=dtype).reshape(tensor.shape)
    return feed


def _numpy_name(datatype: str) -> str:
    return {"BOOL": "bool", "FP16": "float16", "FP32": "float32", "FP64": "float64"}.get(
        datatype, datatype.lower()
    )
