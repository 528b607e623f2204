"""Model file formats: recognise, refuse the unsafe, inspect and load the safe ones.

ONNX and skops are accepted. skops loads only an explicit allow-list of types (never a
list computed from the file being loaded). Pickle and joblib run arbitrary code on load:
refused unless the admin setting ALLOW_PICKLE_MODELS is on (and then only for admins).
The ML libraries are imported lazily, on the first call that needs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared.errors import UnsupportedMediaType, ValidationFailed

ONNX, SKOPS, PICKLE = "onnx", "skops", "pickle"
EXTENSIONS = {".onnx": ONNX, ".skops": SKOPS, ".pkl": PICKLE, ".pickle": PICKLE, ".joblib": PICKLE}
FILE_EXTENSION = {ONNX: "onnx", SKOPS: "skops", PICKLE: "pkl"}

# Types skops does not trust by default but that the estimators trained here contain.
# Reviewed by hand: these are data-only tree structures, safe to reconstruct.
SKOPS_EXTRA_TRUSTED = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

_ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(string)": "string",
    "tensor(bool)": "bool",
}


@dataclass
class Feature:
    name: str
    dtype: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "dtype": self.dtype}


@dataclass
class Inspection:
    format: str
    features: list[Feature] | None = None
    task: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def detect_format(filename: str, data: bytes) -> str:
    """The format from the extension, cross-checked against the content's magic bytes."""
    lower = filename.lower()
    ext = next((e for e in EXTENSIONS if lower.endswith(e)), None)
    looks_pickled = data[:1] == b"\x80" or (data[:2] == b"PK" and ext == ".joblib")
    if ext is None:
        if looks_pickled:
            return PICKLE
        raise UnsupportedMediaType(
            "Unknown model format: upload ONNX (.onnx) or skops (.skops).",
            code="UNSUPPORTED_MODEL_FORMAT",
        )
    fmt = EXTENSIONS[ext]
    if fmt != PICKLE and data[:1] == b"\x80":
        return PICKLE  # a pickle renamed to look safe is still a pickle
    return fmt


def refuse_pickle() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        "Pickle/joblib models can run arbitrary code when loaded and are refused. "
        "Upload ONNX (.onnx) or skops (.skops) instead.",
        code="UNSAFE_MODEL_FORMAT",
    )


def load_onnx(data: bytes, intra_op_threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def load_skops(data: bytes) -> Any:
    import skops.io as sio

    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in SKOPS_EXTRA_TRUSTED]
    if untrusted:
        raise UnsupportedMediaType(
            f"The skops file contains types that are not allowed: {', '.join(untrusted[:10])}.",
            code="UNTRUSTED_MODEL_TYPES",
        )
    return sio.loads(data, trusted=list(SKOPS_EXTRA_TRUSTED))


def load_pickle(data: bytes) -> Any:
    """Only reachable when an admin enabled ALLOW_PICKLE_MODELS."""
    import io

    import joblib

    return joblib.load(io.BytesIO(data))


def load_model(fmt: str, data: bytes, intra_op_threads: int = 1) -> Any:
    if fmt == ONNX:
        return load_onnx(data, intra_op_threads)
    if fmt == SKOPS:
        return load_skops(data)
    return load_pickle(data)


def _task_of(estimator: Any) -> str | None:
    from sklearn.base import is_classifier, is_outlier_detector, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    if is_outlier_detector(estimator):
        return "anomaly"
    return None


def _sklearn_features(estimator: Any) -> list[Feature] | None:
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None
    return [Feature(str(n), "number") for n in names]


def inspect_model(fmt: str, data: bytes) -> Inspection:
    """Load the model once to prove it is what it claims and read its schema."""
    try:
        model = load_model(fmt, data)
    except UnsupportedMediaType:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure means a bad file
        raise ValidationFailed(
            f"The {fmt} file could not be loaded: {type(exc).__name__}.", []
        ) from None
    if fmt == ONNX:
        inputs = model.get_inputs()
        meta = model.get_modelmeta().custom_metadata_map
        features: list[Feature] | None
        # One input per feature names them; a single 2-D input needs names from elsewhere.
        per_feature = len(inputs) > 1 or (len(inputs) == 1 and inputs[0].shape[-1:] == [1])
        features = (
            [Feature(i.name, _ONNX_DTYPES.get(i.type, i.type)) for i in inputs]
            if per_feature
            else None
        )
        if meta.get("features"):  # written by this platform's export: names and dtypes
            try:
                features = [Feature(f["name"], f["dtype"]) for f in json.loads(meta["features"])]
            except (ValueError, KeyError, TypeError):
                features = None
        elif meta.get("feature_names"):
            dtype = _ONNX_DTYPES.get(inputs[0].type, "float32") if inputs else "float32"
            features = [Feature(n, dtype) for n in meta["feature_names"].split(",")]
        return Inspection(
            format=ONNX,
            features=features,
            task=meta.get("task"),
            details={
                "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in inputs],
                "outputs": [{"name": o.name, "type": o.type} for o in model.get_outputs()],
            },
        )
    return Inspection(format=fmt, features=_sklearn_features(model), task=_task_of(model))
