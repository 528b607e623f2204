"""A smaller ONNX of a version as a new version: onnxruntime's dynamic int8 quantization.

Dynamic quantization stores the weights of MatMul / Gemm / Conv / Attention / LSTM /
Gather as int8 and quantizes activations on the fly: it shrinks neural networks and
linear layers about 4x. It has nothing to work on in the graphs the platform trains:
tree ensembles are ``TreeEnsemble*`` nodes (thresholds and leaf weights, compared and
summed, no integer kernels exist) and linear models are ``LinearClassifier`` /
``LinearRegressor`` (ai.onnx.ml, float only). Measured on models trained here (30
features): random forest 1,414,515 -> 1,414,592 bytes, gradient boosting 55,604 -> 55,681,
logistic regression 3,597 -> 3,690, with the same operators before and after. So a
quantization that converts no operator is refused (422, naming the graph's operators)
instead of registering an identical copy.

When it does apply, the new version gets the source's schema, profile, task and tags,
``params.quantized_from``; the answer reports size, latency (median of repeated runs of
the same rows in this process) and how far the outputs moved on those rows: the caller's
``records``, else rows drawn from the source's training profile (quantiles and category
frequencies), so no dataset needs to be read. Metric deltas on a labelled dataset are the
evaluate route's job (run it on both versions).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from shared.errors import AppError, ValidationFailed
from shared.names import check_name
from shared.prediction.schemas import GraphStats, QuantizeRequest, QuantizeResult
from shared.registry.files import NewFile
from shared.registry.loader import ModelLoader
from shared.registry.schemas import Lineage, VersionInfo, VersionMetadata
from shared.registry.store import ModelRegistry

QUANTIZED_OPS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QAttention")
QUANTIZED_PREFIXES = ("QLinear", "DynamicQuantize")
LATENCY_REPEATS = 7


class QuantizationNotApplicable(AppError):
    status, code, title = 422, "QUANTIZATION_NOT_APPLICABLE", "Quantization would not help"


def _serving_onnx(info: VersionInfo) -> Any:
    serving = next((f for f in info.files if f.role == "serving"), None)
    model = next((f for f in info.files if f.role == "model"), None)
    if serving is not None:
        return serving
    if model is not None and (model.format or info.format) == "onnx":
        return model
    return None


def _operators(onnx_bytes: bytes) -> list[str]:
    import onnx

    graph = onnx.load_from_string(onnx_bytes).graph
    return sorted({node.op_type for node in graph.node})


def _quantize(onnx_bytes: bytes, weight_type: str) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="quantize-") as tmp:
        source, target = Path(tmp) / "source.onnx", Path(tmp) / "quantized.onnx"
        source.write_bytes(onnx_bytes)
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
        )
        return target.read_bytes()


def profile_rows(profile: dict[str, Any], features: list[dict[str, str]], n: int, seed: int = 0):
    """``n`` records drawn from a training profile: numbers by interpolating its quantiles
    (inverse CDF), categories by their frequencies. Missing statistics give nulls."""
    import numpy as np

    rng = np.random.default_rng(seed)
    columns: dict[str, list[Any]] = {}
    described = profile.get("features", {})
    for feature in features:
        name, stats = feature["name"], described.get(feature["name"]) or {}
        quantiles = stats.get("quantiles")
        categories = {k: v for k, v in (stats.get("categories") or {}).items() if k != "__other__"}
        if quantiles:
            values = np.interp(rng.random(n), quantiles["probs"], quantiles["values"])
            columns[name] = values.tolist()
        elif categories:
            keys = list(categories)
            weights = np.asarray([categories[k] for k in keys], dtype=float)
            picked = rng.choice(len(keys), size=n, p=weights / weights.sum())
            if feature.get("dtype") == "bool":
                columns[name] = [keys[i] == "true" for i in picked]
            else:
                columns[name] = [keys[i] for i in picked]
        else:
            columns[name] = [None] * n
    return [{name: columns[name][i] for name in columns} for i in range(n)]


def _compare(
    source: Any, quantized: Any, feed: dict[str, Any], task: str | None
) -> tuple[float, float | None, float, float]:
    import numpy as np

    def timed(session: Any) -> tuple[list[Any], float]:
        runs = []
        outputs: list[Any] = []
        for _ in range(LATENCY_REPEATS):
            started = time.perf_counter()
            outputs = session.run(None, feed)
            runs.append((time.perf_counter() - started) * 1000)
        return outputs, statistics.median(runs)

    before, source_ms = timed(source)
    after, quantized_ms = timed(quantized)
    diffs = [
        float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)), initial=0))
        for a, b in zip(before, after, strict=True)
        if np.asarray(a).dtype.kind == "f"
    ]
    agreement = None
    if task in ("classification", "anomaly") or (task is None and len(before) > 1):
        agreement = float(np.mean(np.asarray(before[0]).ravel() == np.asarray(after[0]).ravel()))
    return max(diffs, default=0.0), agreement, source_ms, quantized_ms


class Quantizer:
    def __init__(self, registry: ModelRegistry, loader: ModelLoader) -> None:
        self.registry = registry
        self.loader = loader

    def quantize(
        self, name: str, version: int, body: QuantizeRequest, created_by: str
    ) -> tuple[QuantizeResult, VersionInfo]:
        from shared.prediction.inputs import check_records
        from shared.prediction.runtime import onnx_feed
        from shared.registry.formats import load_onnx

        check_name(name, "model")
        info = self.registry.get_version(name, version)  # 404 model / version
        if info.format == "partitioned":
            raise QuantizationNotApplicable(
                f"{name} version {version} is partitioned: its sub-models are tree ensembles"
                " or linear models, which int8 dynamic quantization does not convert."
            )
        stored = _serving_onnx(info)
        if stored is None:
            raise QuantizationNotApplicable(
                f"{name} version {version} has no ONNX graph (its scikit-learn model did not"
                " convert with parity): there is nothing to quantize."
            )
        source_bytes = self.loader.read_verified(info, stored)
        try:
            quantized_bytes = _quantize(source_bytes, body.weight_type)
        except Exception as exc:  # noqa: BLE001 - the quantizer's refusal is the answer
            raise QuantizationNotApplicable(
                f"onnxruntime could not quantize this graph: {type(exc).__name__}: {exc}"[:500]
            ) from None
        converted = [
            op
            for op in _operators(quantized_bytes)
            if op in QUANTIZED_OPS or op.startswith(QUANTIZED_PREFIXES)
        ]
        if not converted:
            operators = ", ".join(_operators(source_bytes)[:20])
            raise QuantizationNotApplicable(
                f"Dynamic int8 quantization converts MatMul, Gemm, Conv, Attention, LSTM and"
                f" Gather weights; this graph has none of them ({operators}). Tree ensembles"
                " and ai.onnx.ml linear models have no integer kernels: the quantized graph"
                f" would be the same ({len(source_bytes)} vs {len(quantized_bytes)} bytes)."
            )
        features = [f.model_dump() for f in info.features or []]
        records = body.records or self._profile_records(info, features, body.sample_rows)
        source, quantized = load_onnx(source_bytes), load_onnx(quantized_bytes)
        cols = check_records(records, features)
        max_diff, agreement, source_ms, quantized_ms = _compare(
            source, quantized, onnx_feed(source, cols), info.task
        )
        created = self._register(name, info, quantized_bytes, body, created_by)
        result = QuantizeResult(
            model=name,
            source=GraphStats(version=version, size_bytes=len(source_bytes), latency_ms=source_ms),
            quantized=GraphStats(
                version=created.version, size_bytes=len(quantized_bytes), latency_ms=quantized_ms
            ),
            size_ratio=len(quantized_bytes) / len(source_bytes),
            latency_ratio=quantized_ms / source_ms if source_ms else 1.0,
            rows_compared=cols.n_rows,
            max_abs_diff=max_diff,
            label_agreement=agreement,
            quantized_operators=converted,
        )
        return result, created

    def _profile_records(
        self, info: VersionInfo, features: list[dict[str, str]], n: int
    ) -> list[dict[str, Any]]:
        stored = next((f for f in info.files if f.path.endswith("/artifacts/profile.json")), None)
        if stored is None or not features:
            raise ValidationFailed(
                f"{info.name} version {info.version} has no training profile to draw rows"
                " from: send 'records' to compare the outputs on.",
                [{"loc": ["records"], "msg": "required for this version", "type": "missing"}],
            )
        profile = json.loads(self.loader.read_verified(info, stored))
        return profile_rows(profile, features, n)

    def _register(
        self,
        name: str,
        info: VersionInfo,
        data: bytes,
        body: QuantizeRequest,
        created_by: str,
    ) -> VersionInfo:
        artifacts = [
            NewFile(f.path.rsplit("/", 1)[1], self.loader.read_verified(info, f))
            for f in info.files
            if f.role == "artifact" and f.path.endswith("/artifacts/profile.json")
        ]
        meta = VersionMetadata(
            description=body.description
            or f"Dynamic {body.weight_type} quantization of version {info.version}.",
            params={
                **info.params,
                "quantized_from": info.version,
                "quantization": f"dynamic {body.weight_type}",
            },
            tags={**info.tags, "quantized_from": str(info.version)},
            features=info.features,
            task=info.task,
            alias=body.alias,
            lineage=info.lineage or Lineage(),
        )
        return self.registry.register(
            name, "onnx", NewFile("model.onnx", data), artifacts, meta, created_by=created_by
        )
