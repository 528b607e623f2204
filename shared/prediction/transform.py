"""The preprocessed features of records: what a trained pipeline feeds its estimator.

The earlier system's preprocess endpoint. A trained version is a scikit-learn Pipeline
(impute, scale for linear models, one-hot encode categories, then the estimator); this
runs every step but the last on validated records and returns the columns by their
scikit-learn names (``num__x``, ``cat__city_paris``...). It needs the skops file: an ONNX
graph fuses the steps, so an uploaded ONNX-only version has nothing to show (422).
scikit-learn and pandas load on the first call, never on import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from shared.errors import AppError, NotFound, PayloadTooLarge, ValidationFailed
from shared.names import check_name
from shared.prediction.inputs import check_records
from shared.prediction.runtime import as_frame
from shared.prediction.schemas import TransformRequest, TransformResult
from shared.registry.files import find_file
from shared.registry.loader import LoadedModel, ModelLoader


class NoPipeline(AppError):
    status, code, title = 422, "NO_PIPELINE", "No preprocessing pipeline"


class Transformer:
    def __init__(self, loader: ModelLoader, max_records: int) -> None:
        self.loader = loader
        self.max_records = max_records

    def _pipeline(self, name: str, version: int, partition: str | None) -> tuple[Any, list, str]:
        parent = self.loader.load(name, version=version)
        manifest = parent.model if parent.format == "partitioned" else None
        info = parent.info
        if manifest is not None:
            if partition is None:
                raise ValidationFailed(
                    f"{name} has one pipeline per '{manifest['partition_by']}': send 'partition'.",
                    [{"loc": ["partition"], "msg": "required for this model", "type": "missing"}],
                )
            entry = manifest["partitions"].get(partition)
            if entry is None:
                raise NotFound(
                    f"{name} version {version} has no partition '{partition[:100]}'.",
                    code="PARTITION_NOT_FOUND",
                )
            stored = find_file(info, entry["skops"], manifest)
            features = manifest.get("features") or []
        else:
            partition = None  # a partition means nothing to an unpartitioned model
            stored = next((f for f in info.files if f.role == "model"), None)
            features = [f.model_dump() for f in info.features or []]
        if stored is None or (stored.format or info.format) != "skops" or not features:
            raise NoPipeline(
                f"{name} version {version} has no scikit-learn pipeline (skops file with a"
                " feature schema) to transform with: only trained or skops-uploaded versions"
                " can show their preprocessed features."
            )
        loaded: LoadedModel = self.loader.load_file(info, stored)
        steps = getattr(loaded.model, "steps", None)
        if not steps or len(steps) < 2:
            raise NoPipeline(
                f"{name} version {version} is a bare estimator, not a pipeline: it has no"
                " preprocessing steps."
            )
        return loaded.model, features, partition

    def transform(self, name: str, version: int, body: TransformRequest) -> TransformResult:
        check_name(name, "model")
        if len(body.records) > self.max_records:
            raise PayloadTooLarge(
                f"At most {self.max_records} records per request.", code="TOO_MANY_RECORDS"
            )
        partition = None if body.partition is None else str(body.partition)
        pipeline, features, partition = self._pipeline(name, version, partition)
        cols = check_records(body.records, features)
        return TransformResult(
            model=name,
            version=version,
            partition=partition,
            ignored_fields=cols.ignored_fields,
            **_preprocess(pipeline, features, as_frame(cols)),
        )


def _preprocess(pipeline: Any, features: Sequence[dict[str, str]], frame: Any) -> dict[str, Any]:
    import numpy as np

    from shared.ml.pipeline import prepare_frame

    preprocess = pipeline[:-1]
    matrix = preprocess.transform(prepare_frame(frame, list(features)))
    if hasattr(matrix, "toarray"):  # a sparse one-hot block
        matrix = matrix.toarray()
    matrix = np.asarray(matrix, dtype=float)
    try:
        columns = [str(c) for c in preprocess.get_feature_names_out()]
    except (AttributeError, ValueError):
        columns = [f"x{i}" for i in range(matrix.shape[1])]
    rows = [[None if math.isnan(v) else v for v in row] for row in matrix.tolist()]
    return {"columns": columns, "rows": rows}
