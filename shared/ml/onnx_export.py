"""ONNX export of a fitted pipeline, its parity check, and the feed/run helpers for serving.

Conventions (the prediction side relies on them):

* One input per feature, in feature order, shape ``[None, 1]``: ``tensor(float)`` for
  ``number`` and ``bool`` (0/1) features, ``tensor(string)`` for ``string`` features
  (missing as ``""``). :func:`onnx_inputs` builds exactly that feed from any DataFrame.
  Inputs are named after their feature; skl2onnx rewrites names to identifiers
  (``mean radius`` -> ``mean_radius``) and the export puts the real name back unless it
  is taken by another graph value (a feature called ``label``, say). :func:`run_onnx`
  therefore matches the feed to the inputs by position when the names differ.
* Outputs, in this order (names may gain a suffix if a feature is called the same):
  classification ``label`` + ``probabilities`` (``[n, n_classes]``, no ZipMap);
  regression ``variable``; anomaly ``label`` (-1 outlier / 1 inlier) + ``scores``
  (``decision_function``: negative means outlier). :func:`run_onnx` reads them by position.
* ``metadata_props``: ``feature_names`` (comma-joined), ``feature_dtypes`` (comma-joined
  kinds), ``features`` (JSON ``[{"name", "dtype"}]``, unambiguous when a name holds a
  comma), ``task``, and ``classes`` (JSON) for classifiers.

skl2onnx and onnx are imported only when exporting; serving needs onnxruntime alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shared.ml.pipeline import STRING, describe_features, prepare_frame

# ai.onnx.ml 3 is the newest ML opset skl2onnx 1.20 converts IsolationForest to; the
# default opset is what it was tested with.
_TARGET_OPSET = {"": 21, "ai.onnx.ml": 3}

# Parity tolerances. ONNX tree ensembles and our float inputs run in float32, sklearn in
# float64: probabilities and anomaly scores are bounded, so an absolute bound fits; a
# regression target can be any size, and float32 keeps ~7 significant digits, so its bound
# is relative to the largest prediction (never tighter than absolute 1e-4).
PROBABILITY_TOLERANCE = 1e-4
SCORE_TOLERANCE = 1e-4
REGRESSION_RELATIVE_TOLERANCE = 1e-4


def _patch_skl2onnx_hist_gradient_boosting() -> None:
    """skl2onnx 1.20 gives HistGradientBoosting leaves a Python ``False`` missing-value
    flag; onnx >= 1.17 refuses booleans in an INTS attribute. Casting the flag to int is
    what the converter means; the patch is a no-op where the flag is already an int."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node
    if getattr(original, "_casts_missing_flag", False):
        return

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = False, **kwargs: Any) -> Any:
        flag = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=flag, **kwargs)

    add_node._casts_missing_flag = True  # type: ignore[attr-defined]
    tree_ensemble.add_node = add_node


def _share_skl2onnx_op_versions() -> None:
    """skl2onnx rebuilds its table of every ONNX operator's versions from the onnx schemas
    for each conversion: 9 ms of a 32 ms forest export, paid per room of a partitioned
    job. The table depends only on the installed onnx package and is only read, so it
    is built once and shared by later conversions."""
    from skl2onnx.common._container import ModelComponentContainer

    original = ModelComponentContainer._build_op_version
    if getattr(original, "_shared", False):
        return
    table: dict[str, Any] = {}

    def build_op_version(self: Any) -> None:
        if "versions" not in table:
            original(self)
            table["versions"] = self._op_versions
        self._op_versions = table["versions"]

    build_op_version._shared = True  # type: ignore[attr-defined]
    ModelComponentContainer._build_op_version = build_op_version


def _features_of(X: pd.DataFrame, features: Sequence[dict[str, str]] | None) -> list[dict]:
    return list(features) if features is not None else describe_features(X, list(X.columns))


def _initial_types(features: Sequence[dict[str, str]]) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    def tensor(kind: str) -> Any:
        return StringTensorType([None, 1]) if kind == STRING else FloatTensorType([None, 1])

    return [(f["name"], tensor(f["dtype"])) for f in features]


def export_onnx(
    pipeline: Any,
    X_sample: pd.DataFrame,
    task: str,
    *,
    features: Sequence[dict[str, str]] | None = None,
    classes: Sequence[Any] | None = None,
) -> tuple[bytes | None, dict[str, Any]]:
    """Convert a fitted pipeline; ``(None, {"converted": False, "error": ...})`` if it can't.

    ``X_sample`` gives the input columns in model order (prepared, see ``prepare_frame``);
    ``features`` overrides the kinds read from its dtypes (bools look like numbers there).
    """
    features = _features_of(X_sample, features)
    try:
        from skl2onnx import convert_sklearn

        from shared.ml.onnx_trees import register_tree_converters

        _patch_skl2onnx_hist_gradient_boosting()
        _share_skl2onnx_op_versions()
        register_tree_converters()
        model = pipeline.steps[-1][1]
        options = {id(model): {"zipmap": False}} if task == "classification" else None
        onnx_model = convert_sklearn(
            pipeline,
            initial_types=_initial_types(features),
            options=options,
            target_opset=_TARGET_OPSET,
            # The identity-removal pass is quadratic in nodes; forests are one node each
            # now (onnx_trees), but a pipeline may still hold many: onnxruntime drops
            # identities on load anyway.
            model_optim=False,
        )
        _restore_input_names(onnx_model.graph, [f["name"] for f in features])
    except Exception as exc:  # noqa: BLE001 - any converter failure just means "no ONNX"
        return None, {"converted": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    metadata = {
        "feature_names": ",".join(f["name"] for f in features),
        "feature_dtypes": ",".join(f["dtype"] for f in features),
        "features": json.dumps([{"name": f["name"], "dtype": f["dtype"]} for f in features]),
        "task": task,
    }
    if classes is not None:
        metadata["classes"] = json.dumps([c.item() if hasattr(c, "item") else c for c in classes])
    for key, value in metadata.items():
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    return onnx_model.SerializeToString(), {"converted": True, "error": None}


def _restore_input_names(graph: Any, names: Sequence[str]) -> None:
    used = {i.name for i in graph.input} | {o.name for o in graph.output}
    used |= {i.name for i in graph.initializer}
    for node in graph.node:
        used.update(node.input)
        used.update(node.output)
    for graph_input, name in zip(graph.input, names, strict=True):
        if graph_input.name == name or name in used:
            continue
        old, graph_input.name = graph_input.name, name
        for node in graph.node:
            for position, value in enumerate(node.input):
                if value == old:
                    node.input[position] = name
        used.discard(old)
        used.add(name)


def onnx_inputs(features: Sequence[dict[str, str]], df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ONNX feed for ``df``: one ``[n, 1]`` array per feature (see module docstring)."""
    frame = prepare_frame(df, features)
    feed = {}
    for f in features:
        column = frame[f["name"]].to_numpy()
        if f["dtype"] == STRING:
            feed[f["name"]] = column.astype(str).reshape(-1, 1)
        else:
            feed[f["name"]] = column.astype(np.float32).reshape(-1, 1)
    return feed


def _classes_from(session: Any) -> list[Any] | None:
    raw = session.get_modelmeta().custom_metadata_map.get("classes")
    return json.loads(raw) if raw else None


def _aligned(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The feed keyed by the session's input names (feature names, else by position)."""
    inputs = [i.name for i in session.get_inputs()]
    if all(name in feed for name in inputs):
        return {name: feed[name] for name in inputs}
    raw = session.get_modelmeta().custom_metadata_map.get("features")
    names = [f["name"] for f in json.loads(raw)] if raw else []
    if len(names) == len(inputs) and all(name in feed for name in names):
        return {i: feed[n] for i, n in zip(inputs, names, strict=True)}
    return feed  # not ours: let onnxruntime name what is missing


def run_onnx(session: Any, feed: dict[str, np.ndarray], task: str) -> dict[str, np.ndarray]:
    """``{"predictions"}`` plus ``"probabilities"`` (classification) or ``"scores"``
    (anomaly: ``decision_function``, negative = outlier), as numpy arrays.

    ``feed`` is keyed by feature name (:func:`onnx_inputs`)."""
    outputs = session.run(None, _aligned(session, feed))
    if task == "classification":
        labels = np.asarray(outputs[0]).ravel()
        classes = _classes_from(session)
        # Boolean classes come out of ONNX as int64 0/1; give callers the trained labels.
        if classes and all(isinstance(c, bool) for c in classes):
            labels = labels.astype(bool)
        return {"predictions": labels, "probabilities": np.asarray(outputs[1], dtype=float)}
    if task == "regression":
        return {"predictions": np.asarray(outputs[0], dtype=float).ravel()}
    return {
        "predictions": np.asarray(outputs[0]).ravel(),
        "scores": np.asarray(outputs[1], dtype=float).ravel(),
    }


def _session(onnx_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=providers)


def _labels_agree(expected: np.ndarray, got: np.ndarray, near_tie: np.ndarray) -> bool:
    # A float32 rounding may flip a decision sitting on the boundary; only there may they differ.
    return bool(np.all((expected == got) | near_tie))


def verify_parity(
    onnx_bytes: bytes,
    pipeline: Any,
    X_holdout: pd.DataFrame,
    task: str,
    *,
    features: Sequence[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Run ONNX and sklearn on the holdout and compare (tolerances above).

    Labels must agree except on rows where sklearn's own decision is a near-tie (top two
    probabilities, or the anomaly score and its 0 threshold, within the tolerance).
    """
    result: dict[str, Any] = {"converted": True, "max_abs_diff": None, "verified": False}
    try:
        session = _session(onnx_bytes)
        got = run_onnx(session, onnx_inputs(_features_of(X_holdout, features), X_holdout), task)
    except Exception as exc:  # noqa: BLE001 - a model that won't run is simply not verified
        return {**result, "error": f"ONNX run failed: {type(exc).__name__}: {exc}"[:500]}
    if task == "classification":
        expected = pipeline.predict_proba(X_holdout)
        diff = float(np.max(np.abs(got["probabilities"] - expected), initial=0.0))
        top2 = np.sort(expected, axis=1)[:, -2:] if expected.shape[1] > 1 else expected
        near_tie = (top2[:, -1] - top2[:, 0]) <= 2 * PROBABILITY_TOLERANCE
        labels_ok = _labels_agree(pipeline.predict(X_holdout), got["predictions"], near_tie)
        tolerance = PROBABILITY_TOLERANCE
    elif task == "regression":
        expected = np.asarray(pipeline.predict(X_holdout), dtype=float)
        diff = float(np.max(np.abs(got["predictions"] - expected), initial=0.0))
        labels_ok = True
        scale = float(np.max(np.abs(expected), initial=0.0))
        tolerance = REGRESSION_RELATIVE_TOLERANCE * max(1.0, scale)
    else:
        expected = pipeline.decision_function(X_holdout)
        diff = float(np.max(np.abs(got["scores"] - expected), initial=0.0))
        near_tie = np.abs(expected) <= SCORE_TOLERANCE
        labels_ok = _labels_agree(pipeline.predict(X_holdout), got["predictions"], near_tie)
        tolerance = SCORE_TOLERANCE
    verified = labels_ok and diff <= tolerance
    error = None
    if not labels_ok:
        error = "ONNX predicted different labels than scikit-learn on the holdout."
    elif not verified:
        error = f"ONNX outputs differ from scikit-learn by {diff:.3g} (tolerance {tolerance:.3g})."
    return {**result, "max_abs_diff": diff, "verified": verified, "error": error}
