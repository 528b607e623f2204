"""The answer of ``POST /predict/{model}``: the model's outputs as numpy arrays, encoded
with orjson straight from the arrays (no Python list per row on the way out).

The JSON is the one ``PredictResponse`` describes, whatever the body form was: members in
its order, ``null`` members left out. Columnar bodies get the same answer as records:
``predictions`` (and ``probabilities``/``scores``) are already one array per output, the
compact form, and a client switching forms changes nothing in how it reads the answer.
An MLflow client reads ``predictions`` as it does from ``mlflow models serve``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from shared.prediction.runtime import Outputs


def _encodable(array: np.ndarray) -> Any:
    """What orjson serialises as today's json.dumps(array.tolist()) did."""
    if array.dtype.kind == "f" and array.dtype != np.float64:
        # float32 -> float64 keeps tolist()'s digits (0.30000001192092896, not 0.3).
        return np.ascontiguousarray(array, dtype=np.float64)
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return array.tolist()  # labels as text (object arrays): orjson takes no object arrays


@dataclass
class OnlineResult:
    model: str
    version: int
    outputs: Outputs
    partition: str | None = None
    ignored_fields: list[str] = field(default_factory=list)
    variant: str | None = None
    request_id: str = ""
    prediction_id: str = ""

    @cached_property
    def predictions(self) -> list[Any]:
        return self.outputs.predictions.tolist()

    @cached_property
    def probabilities(self) -> list[list[float]] | None:
        p = self.outputs.probabilities
        return None if p is None else p.tolist()

    @cached_property
    def scores(self) -> list[float] | None:
        s = self.outputs.scores
        return None if s is None else s.tolist()

    @property
    def classes(self) -> list[Any] | None:
        return self.outputs.classes if self.outputs.probabilities is not None else None

    def to_json(self) -> bytes:
        import orjson

        out = self.outputs
        body: dict[str, Any] = {"model": self.model, "version": self.version}
        if self.partition is not None:
            body["partition"] = self.partition
        body["predictions"] = _encodable(out.predictions)
        if out.probabilities is not None:
            body["probabilities"] = _encodable(out.probabilities)
            if out.classes is not None:
                body["classes"] = out.classes
        if out.scores is not None:
            body["scores"] = _encodable(out.scores)
        body["ignored_fields"] = self.ignored_fields
        if self.variant is not None:
            body["variant"] = self.variant
        body["request_id"] = self.request_id
        body["prediction_id"] = self.prediction_id
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
