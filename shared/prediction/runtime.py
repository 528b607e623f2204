"""A model ready to run (:class:`Servable`), its input (:class:`Columns`) and its outputs.

The one path every prediction takes, online (``POST /predict``), Open Inference Protocol
and batch scoring alike: validated columns in the model's feature order -> an ONNX feed
(:func:`onnx_feed`) -> ``session.run`` -> :func:`read_outputs`; or, for a version without
a verified ONNX export, the scikit-learn estimator on a prepared frame. How the columns
are made differs by source (JSON records in ``inputs``, V2 tensors in ``oip``, Arrow
batches in ``batch``); what happens from there on does not.

numpy only: pandas and scikit-learn load just for the scikit-learn fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from shared.registry.loader import LoadedModel

NUMBER, STRING, BOOL = "number", "string", "bool"
_NUMERIC_DTYPES = {"number", "float32", "float64", "int64", "int32", "double", "float", "int"}
# ONNX input element types -> numpy; anything else numeric is fed as float32.
ONNX_NUMPY: dict[str, Any] = {
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


def kind(dtype: str) -> str:
    """A feature dtype as the kind a value is checked against: number, string or bool."""
    if dtype in _NUMERIC_DTYPES:
        return NUMBER
    if dtype in ("bool", "boolean"):
        return BOOL
    return STRING


@dataclass(frozen=True)
class Columns:
    """Validated input, column by column, in the model's feature order.

    A column is a list or a numpy array (numbers and booleans of online, OIP and batch
    inputs are float64 arrays): numbers as floats (missing: NaN), booleans as 0.0/1.0
    (missing: NaN), strings as ``str`` (missing: ``""``).
    """

    names: list[str]
    kinds: list[str]
    values: list[Any]
    n_rows: int
    ignored_fields: list[str] = field(default_factory=list)


def onnx_feed(session: Any, cols: Columns) -> dict[str, np.ndarray]:
    """The feed of an ONNX session: one [n, 1] input per feature, or one [n, k] matrix."""
    inputs = session.get_inputs()
    if len(inputs) == len(cols.names):
        feed = {}
        for spec, values, k in zip(inputs, cols.values, cols.kinds, strict=True):
            if k == STRING or spec.type == "tensor(string)":
                if isinstance(values, np.ndarray):
                    array = values if values.dtype == object else values.astype(str).astype(object)
                else:
                    array = np.array([str(v) for v in values], dtype=object)
            else:
                array = np.asarray(values, dtype=ONNX_NUMPY.get(spec.type, np.float32))
            feed[spec.name] = array.reshape(-1, 1)
        return feed
    if len(inputs) == 1:
        matrix = np.empty(
            (cols.n_rows, len(cols.names)), dtype=ONNX_NUMPY.get(inputs[0].type, np.float32)
        )
        for position, values in enumerate(cols.values):
            matrix[:, position] = values
        return {inputs[0].name: matrix}
    from shared.errors import ValidationFailed

    raise ValidationFailed("The model's inputs do not match its recorded features.")


def as_frame(cols: Columns) -> Any:
    """A DataFrame of the columns (imports pandas: scikit-learn paths only)."""
    import pandas as pd

    return pd.DataFrame(dict(zip(cols.names, cols.values, strict=True)))


@dataclass
class Outputs:
    """What a model returned for some rows, as numpy arrays (row order of the input)."""

    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None
    scores: np.ndarray | None = None

    def as_lists(self) -> dict[str, Any]:
        """predictions (+ probabilities and classes, or scores) as plain JSON-able lists."""
        result: dict[str, Any] = {"predictions": self.predictions.tolist()}
        if self.scores is not None:
            result["scores"] = self.scores.tolist()
        if self.probabilities is not None:
            result["probabilities"] = self.probabilities.tolist()
            result["classes"] = self.classes
        return result


def read_outputs(
    raw: Sequence[Any], task: str | None, classes: list[Any] | None, with_probabilities: bool
) -> Outputs:
    """An ONNX session's outputs: labels, then probabilities (or a ZipMap) or scores."""
    labels = np.asarray(raw[0]).ravel()
    second = raw[1] if len(raw) > 1 else None
    if task == "anomaly":
        return Outputs(labels, scores=np.asarray(second, dtype=np.float64).ravel())
    if task == "classification" or (task is None and second is not None):
        if not with_probabilities or second is None:
            return Outputs(labels)
        if isinstance(second, list):  # a ZipMap output: one {class: p} per row
            zipped = sorted(second[0]) if second else []
            proba = np.array([[row[c] for c in zipped] for row in second], dtype=np.float64)
            return Outputs(labels, proba.reshape(len(second), len(zipped)), zipped)
        return Outputs(labels, np.asarray(second, dtype=np.float64), classes)
    return Outputs(labels)


@dataclass(frozen=True)
class Servable:
    """A model ready to run: its feature schema, task and classes, and what runs it.

    Exactly one of ``session`` (an onnxruntime session, or a batch session around one)
    and ``estimator`` (a scikit-learn model) is set. ``loaded`` is the registry file it
    came from, when it came from the registry.
    """

    features: list[dict[str, str]]
    task: str | None
    classes: list[Any] | None
    session: Any = None
    estimator: Any = None
    loaded: LoadedModel | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.session is None) == (self.estimator is None):
            raise ValueError("give an ONNX session or a scikit-learn estimator")

    @classmethod
    def of(
        cls,
        loaded: LoadedModel,
        features: list[dict[str, str]],
        task: str | None,
        classes: list[Any] | None,
    ) -> Servable:
        """The registry's loaded model (ONNX session or estimator) with its schema."""
        if loaded.format == "onnx":
            return cls(features, task, classes, session=loaded.model, loaded=loaded)
        return cls(features, task, classes, estimator=loaded.model, loaded=loaded)

    def run(self, cols: Columns, with_probabilities: bool = True) -> Outputs:
        if self.session is not None:
            raw = self.session.run(None, onnx_feed(self.session, cols))
            return read_outputs(raw, self.task, self.classes, with_probabilities)
        return self._run_estimator(cols, with_probabilities)

    def _run_estimator(self, cols: Columns, with_probabilities: bool) -> Outputs:
        from shared.ml.pipeline import prepare_frame  # lazy: pandas for the fallback only

        model = self.estimator
        frame = prepare_frame(as_frame(cols), self.features)
        labels = np.asarray(model.predict(frame))
        if labels.dtype.kind == "U":
            labels = labels.astype(object)
        if self.task == "anomaly":
            return Outputs(labels, scores=np.asarray(model.decision_function(frame), np.float64))
        if with_probabilities and hasattr(model, "predict_proba") and self.task != "regression":
            proba = np.asarray(model.predict_proba(frame), dtype=np.float64)
            return Outputs(labels, proba, self.classes)
        return Outputs(labels)
