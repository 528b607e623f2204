"""The training core: pure computation on DataFrames (no storage, no HTTP).

Import the submodules you need; names are also re-exported here lazily, so
``from shared.ml import train_model`` works without loading scikit-learn for callers
that only serve ONNX (``shared.ml.onnx_export`` imports neither sklearn nor skl2onnx
until it exports).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainedModel": "train",
    "TrainingError": "train",
    "train_model": "train",
    "validate_spec": "train",
    "infer_task": "train",
    "build_profile": "profile",
    "export_onnx": "onnx_export",
    "verify_parity": "onnx_export",
    "onnx_inputs": "onnx_export",
    "run_onnx": "onnx_export",
    "prepare_frame": "pipeline",
    "dump_skops": "serialize",
    "load_skops": "serialize",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shared.ml' has no attribute {name!r}")
    return getattr(importlib.import_module(f"shared.ml.{module}"), name)
