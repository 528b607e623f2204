"""Online prediction: resolve the version, check the input, run the model.

The ONNX path imports onnxruntime and numpy only; scikit-learn and pandas load just
for versions without a verified ONNX export (see ``shared.prediction.runtime``).
"""

from __future__ import annotations

import json
from typing import Any

from shared import metrics
from shared.errors import PayloadTooLarge, ValidationFailed
from shared.names import check_name
from shared.prediction.answer import OnlineResult
from shared.prediction.body import OnlineRequest
from shared.prediction.runtime import Servable
from shared.registry.loader import LoadedModel, ModelLoader

_ONNX_KINDS = {"tensor(string)": "string", "tensor(bool)": "bool"}


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
        owner = parent or loaded

        def build() -> Servable:
            task = (manifest or {}).get("task") or owner.info.task
            return Servable.of(loaded, _features_of(owner, manifest), task, _classes_of(loaded))

        # The schema of a loaded model never changes: build it once, not per request.
        return self.loader.derived(loaded, "servable", build), partition

    def predict(
        self, name: str, request: OnlineRequest, request_id: str = "", prediction_id: str = ""
    ) -> OnlineResult:
        """Predict for the request's rows with its version, alias or the champion."""
        rows = request.rows
        if rows.n_rows > self.max_records:
            raise PayloadTooLarge(
                f"At most {self.max_records} records per request; use batch scoring for more.",
                code="TOO_MANY_RECORDS",
            )
        if not rows.n_rows:
            raise ValidationFailed("Send at least one record.")
        partition = None if request.partition is None else str(request.partition)
        servable, partition = self.servable(name, request.version, request.alias, partition)
        cols = rows.columns(servable.features)
        outputs = servable.run(cols, request.return_probabilities)
        assert servable.loaded is not None
        metrics.count_predictions(name, servable.loaded.version, rows.n_rows)
        return OnlineResult(
            model=name,
            version=servable.loaded.version,
            outputs=outputs,
            partition=partition,
            ignored_fields=cols.ignored_fields,
            variant=request.alias,
            request_id=request_id,
            prediction_id=prediction_id,
        )
