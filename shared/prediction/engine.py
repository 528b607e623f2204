"""Online prediction: resolve the version, check the input, run ONNX (or scikit-learn).

The ONNX path imports onnxruntime and numpy only; scikit-learn and pandas load just
for versions without a verified ONNX export.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared import metrics
from shared.errors import PayloadTooLarge, ValidationFailed
from shared.names import check_name
from shared.prediction.inputs import Columns, as_frame, check_records, onnx_feed
from shared.registry.loader import LoadedModel, ModelLoader

_ONNX_KINDS = {"tensor(string)": "string", "tensor(bool)": "bool"}


@dataclass
class Prediction:
    model: str
    version: int
    partition: str | None
    task: str | None
    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    classes: list[Any] | None = None
    scores: list[float] | None = None
    ignored_fields: list[str] = field(default_factory=list)
    variant: str | None = None
    latency_ms: float = 0.0


@dataclass(frozen=True)
class Servable:
    """What runs one prediction: the loaded model plus its schema and task."""

    loaded: LoadedModel
    features: list[dict[str, str]]
    task: str | None
    classes: list[Any] | None


def _features_of(loaded: LoadedModel, manifest: dict[str, Any] | None) -> list[dict[str, str]]:
    if manifest is not None and manifest.get("features"):
        return manifest["features"]
    if loaded.info.features:
        return [f.model_dump() for f in loaded.info.features]
    if loaded.format == "onnx":
        inputs = loaded.model.get_inputs()
        if len(inputs) > 1 or (inputs and inputs[0].shape[-1:] == [1]):
            return [{"name": i.name, "dtype": _ONNX_KINDS.get(i.type, "number")} for i in inputs]
    raise ValidationFailed(
        f"{loaded.name} version {loaded.version} has no feature schema; send a raw tensor to"
        " the Open Inference Protocol route instead.",
    )


def _classes_of(loaded: LoadedModel) -> list[Any] | None:
    if loaded.format == "onnx":
        raw = loaded.model.get_modelmeta().custom_metadata_map.get("classes")
        return json.loads(raw) if raw else None
    classes = getattr(loaded.model, "classes_", None)
    return classes.tolist() if classes is not None else None


class Predictor:
    def __init__(self, loader: ModelLoader, max_records: int) -> None:
        self.loader = loader
        self.max_records = max_records
        self._servables: dict[tuple[str, int, str], Servable] = {}

    def servable(
        self,
        name: str,
        version: int | None = None,
        alias: str | None = None,
        partition: str | None = None,
    ) -> tuple[Servable, str | None]:
        """The model that answers, and the partition it answers for."""
        check_name(name, "model")
        loaded = self.loader.load(name, version=version, alias=alias)
        parent = manifest = None
        if loaded.format == "partitioned":
            manifest = loaded.model
            if partition is None:
                raise ValidationFailed(
                    f"{name} has one model per '{manifest['partition_by']}': send 'partition'.",
                    [{"loc": ["partition"], "msg": "required for this model", "type": "missing"}],
                )
            parent, loaded = loaded, self.loader.load_partition(loaded, str(partition))
        else:
            partition = None  # a partition means nothing to an unpartitioned model
        # The schema of a loaded model never changes: build it once, not per request.
        key = (loaded.name, loaded.version, loaded.sha256)
        servable = self._servables.get(key)
        if servable is None or servable.loaded is not loaded:
            owner = parent or loaded
            task = (manifest or {}).get("task") or owner.info.task
            servable = Servable(loaded, _features_of(owner, manifest), task, _classes_of(loaded))
            if len(self._servables) > 10_000:
                self._servables.clear()
            self._servables[key] = servable
        return servable, partition

    def predict(
        self,
        name: str,
        records: Sequence[Any],
        version: int | None = None,
        alias: str | None = None,
        partition: str | None = None,
        return_probabilities: bool = False,
    ) -> Prediction:
        started = time.perf_counter()
        if len(records) > self.max_records:
            raise PayloadTooLarge(
                f"At most {self.max_records} records per request; use batch scoring for more.",
                code="TOO_MANY_RECORDS",
            )
        if not records:
            raise ValidationFailed("Send at least one record.")
        servable, partition = self.servable(name, version, alias, partition)
        cols = check_records(records, servable.features)
        outputs = run(servable, cols, return_probabilities)
        metrics.count_predictions(name, servable.loaded.version, len(records))
        return Prediction(
            model=name,
            version=servable.loaded.version,
            partition=partition,
            task=servable.task,
            ignored_fields=cols.ignored_fields,
            variant=alias,
            latency_ms=(time.perf_counter() - started) * 1000,
            **outputs,
        )


def run(servable: Servable, cols: Columns, with_probabilities: bool = True) -> dict[str, Any]:
    """predictions (+ probabilities and classes, or anomaly scores) as plain lists."""
    loaded, task = servable.loaded, servable.task
    if loaded.format == "onnx":
        outputs = loaded.model.run(None, onnx_feed(loaded.model, cols))
        labels = np.asarray(outputs[0]).ravel()
        second = outputs[1] if len(outputs) > 1 else None
        if task == "anomaly":
            return {"predictions": labels.tolist(), "scores": np.asarray(second).ravel().tolist()}
        if task == "classification" or (task is None and second is not None):
            result: dict[str, Any] = {"predictions": labels.tolist()}
            if with_probabilities and second is not None:
                if isinstance(second, list):  # a ZipMap output: one {class: p} per row
                    classes = sorted(second[0]) if second else []
                    result["probabilities"] = [[row[c] for c in classes] for row in second]
                    result["classes"] = classes
                else:
                    result["probabilities"] = np.asarray(second).tolist()
                    result["classes"] = servable.classes
            return result
        return {"predictions": labels.tolist()}
    return _run_sklearn(servable, cols, with_probabilities)


def _run_sklearn(servable: Servable, cols: Columns, with_probabilities: bool) -> dict[str, Any]:
    from shared.ml.pipeline import prepare_frame  # lazy: pandas for the fallback only

    model, task = servable.loaded.model, servable.task
    frame = prepare_frame(as_frame(cols), servable.features)
    labels = model.predict(frame)
    result: dict[str, Any] = {"predictions": np.asarray(labels).tolist()}
    if task == "anomaly":
        result["scores"] = np.asarray(model.decision_function(frame)).tolist()
    elif with_probabilities and hasattr(model, "predict_proba") and task != "regression":
        result["probabilities"] = np.asarray(model.predict_proba(frame)).tolist()
        result["classes"] = servable.classes
    return result
