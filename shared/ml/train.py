"""Train one model from a DataFrame: checks, split, fit, metrics, profile, skops + ONNX.

Pure computation: no storage, no HTTP. ``validate_spec`` runs the same checks from a
dataset's column dtypes alone, so a bad spec is refused when it is saved, not when a job
runs. Every refusal is a ``TrainingError`` whose message names the offending input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from shared.ml import algorithms as algos
from shared.ml.algorithms import ANOMALY, CLASSIFICATION, REGRESSION, TASKS
from shared.ml.holdout import HoldoutOutputs
from shared.ml.metrics import PRIMARY_METRIC, holdout_metrics
from shared.ml.onnx_export import export_onnx, verify_parity
from shared.ml.pipeline import (
    BOOL,
    DATETIME,
    NUMBER,
    STRING,
    build_pipeline,
    kind_of_dtype,
    prepare_frame,
)
from shared.ml.profile import build_profile
from shared.ml.serialize import dump_skops
from shared.ml.speedups import install as sklearn_speedups
from shared.ml.threads import native_threads

MIN_ROWS = 10
# An integer target with at most this many distinct values is read as class labels.
MAX_CLASSES_FOR_INTEGER_TARGET = 20


class TrainingError(ValueError):
    """The spec cannot be trained on this data; the message says why."""


@dataclass
class TrainedModel:
    task: str  # "classification" | "regression" | "anomaly"
    algorithm: str
    params: dict  # effective estimator params (JSON-serialisable)
    features: list[dict]  # [{"name", "dtype": "number"|"string"|"bool"}] in model input order
    target: str | None
    classes: list | None  # class labels (JSON-serialisable) for classification
    metrics: dict[str, float]  # holdout metrics
    primary_metric: str | None  # "accuracy", "rmse", or None (anomaly)
    n_train: int
    n_holdout: int
    profile: dict  # training profile (shared.ml.profile), JSON-serialisable
    skops_bytes: bytes  # the fitted Pipeline, skops.io.dumps
    onnx_bytes: bytes | None  # ONNX export, only if parity verified
    onnx_parity: dict  # {"converted", "max_abs_diff", "verified", "error"}
    estimator: Any  # the fitted Pipeline (not serialised)
    # The prepared holdout rows and their targets, for the training plots (not serialised).
    X_holdout: Any = None
    y_holdout: Any = None
    # The pipeline's memoised answers on the holdout, and (anomaly) every row's score in
    # the order of the frame trained on: the plots reuse them (not serialised).
    answers: Any = None
    row_scores: Any = None
    plots: dict[str, bytes] = field(default_factory=dict)  # {name: PNG}, drawn by the caller
    plot_data: dict[str, Any] = field(default_factory=dict)  # {name: numbers}, drawn later


# --- checks shared by validate_spec and train_model ---------------------------------------


def _check_names(algorithm: str, task: str | None) -> None:
    if algorithm not in algos.ALGORITHMS:
        raise TrainingError(
            f"Unknown algorithm '{algorithm}'; choose one of: {', '.join(algos.ALGORITHMS)}."
        )
    if task is not None and task not in TASKS:
        raise TrainingError(f"Unknown task '{task}'; choose one of: {', '.join(TASKS)}.")


def _check_task(algorithm: str, task: str) -> None:
    if not algos.supports(algorithm, task):
        raise TrainingError(
            f"Algorithm '{algorithm}' does not do {task}; for {task} use one of: "
            f"{', '.join(algos.algorithms_for(task))}."
        )


def _check_target(task: str, target: str | None, target_kind: str | None) -> None:
    if task == ANOMALY and target is not None:
        raise TrainingError("Anomaly detection is unsupervised: leave the target unset.")
    if task != ANOMALY and target is None:
        raise TrainingError(f"Task '{task}' needs a target column.")
    if target_kind == DATETIME:
        raise TrainingError(f"Target '{target}' is a datetime column; it cannot be predicted.")
    if task == REGRESSION and target_kind not in (None, NUMBER):
        raise TrainingError(f"Regression needs a numeric target; '{target}' is {target_kind}.")


def _select_features(
    kinds: dict[str, str],
    target: str | None,
    features: Sequence[str] | None,
    exclude: Sequence[str],
) -> list[dict[str, str]]:
    """The model's features, in order. Datetimes are skipped when features are implied
    and refused when named (derive numeric features from them upstream)."""
    if target is not None and target not in kinds:
        raise TrainingError(f"Target column '{target}' is not in the dataset.")
    if features is None:
        names = [n for n in kinds if n != target and n not in exclude and kinds[n] != DATETIME]
    else:
        names = list(features)
        absent = [n for n in names if n not in kinds]
        if absent:
            raise TrainingError(f"Feature column(s) not in the dataset: {', '.join(absent)}.")
        if target is not None and target in names:
            raise TrainingError(f"Target '{target}' cannot also be a feature.")
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise TrainingError(f"Feature(s) listed more than once: {', '.join(duplicated)}.")
        dates = [n for n in names if kinds[n] == DATETIME]
        if dates:
            raise TrainingError(
                f"Datetime feature(s) are not supported: {', '.join(dates)}; derive numeric "
                "features (hour, weekday, age in days, ...) from them instead."
            )
    if not names:
        raise TrainingError("No feature columns left to train on.")
    return [{"name": n, "dtype": kinds[n]} for n in names]


def _configured_estimator(algorithm: str, task: str, params: dict[str, Any], seed: int) -> Any:
    estimator = algos.make_estimator(algorithm, task, seed)
    unknown = algos.unknown_params(estimator, params)
    if unknown:
        valid = ", ".join(sorted(estimator.get_params(deep=False)))
        raise TrainingError(
            f"Unknown parameter(s) for {algorithm}: {', '.join(unknown)}. Valid: {valid}."
        )
    estimator.set_params(**params)
    # Value checks (types, ranges, choices) without fitting, so validate_spec catches them.
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"Invalid parameter for {algorithm}: {exc}") from None
    return estimator


def _partition_columns(partition_by: str | Sequence[str] | None) -> list[str]:
    if partition_by is None:
        return []
    return [partition_by] if isinstance(partition_by, str) else list(partition_by)


def validate_spec(
    columns: dict[str, str],
    target: str | None,
    features: list[str] | None,
    task: str | None,
    algorithm: str,
    params: dict[str, Any],
    partition_by: str | Sequence[str] | None,
) -> None:
    """Check a spec against a dataset's ``{column: dtype}`` without reading data.

    Without data a numeric target could be either task, so with ``task=None`` it passes
    if the algorithm does classification or regression; ``train_model`` decides from the
    values (and refuses then if the algorithm does not do the task they imply).
    """
    _check_names(algorithm, task)
    kinds = {name: kind_of_dtype(dtype) for name, dtype in columns.items()}
    partitions = _partition_columns(partition_by)
    absent = [p for p in partitions if p not in kinds]
    if absent:
        raise TrainingError(f"Partition column(s) not in the dataset: {', '.join(absent)}.")
    selected = _select_features(kinds, target, features, partitions)
    target_kind = kinds.get(target) if target is not None else None
    candidates = [task] if task is not None else _possible_tasks(target, target_kind)
    for candidate in candidates:
        _check_target(candidate, target, target_kind)
    usable = [t for t in candidates if algos.supports(algorithm, t)]
    if not usable:
        _check_task(algorithm, candidates[0])
    _configured_estimator(algorithm, usable[0], params, seed=0)
    if not selected:
        raise TrainingError("No feature columns left to train on.")


def _possible_tasks(target: str | None, kind: str | None) -> list[str]:
    # A numeric target is class labels or a quantity depending on its values, unseen here.
    if target is None:
        return [ANOMALY]
    return [CLASSIFICATION, REGRESSION] if kind == NUMBER else [CLASSIFICATION]


# --- training ---------------------------------------------------------------------------


def infer_task(y: pd.Series | None) -> str:
    """None -> anomaly; text, category or bool -> classification; integers (integral
    values, so integer columns read with gaps as float count) with at most 20 distinct
    values -> classification; other numbers -> regression."""
    if y is None:
        return ANOMALY
    kind = kind_of_dtype(y.dtype)
    if kind in (STRING, BOOL):
        return CLASSIFICATION
    values = pd.to_numeric(y.dropna(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    integral = bool(np.all(np.isfinite(values) & (values == np.round(values))))
    if integral and len(np.unique(values)) <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return CLASSIFICATION
    return REGRESSION


def _class_labels(y: pd.Series) -> np.ndarray:
    """Labels in a form every runtime agrees on: bool, int64, or str (floats kept only
    when not whole numbers)."""
    kind = kind_of_dtype(y.dtype)
    if kind == BOOL:
        return y.astype(bool).to_numpy()
    if kind == NUMBER:
        values = y.to_numpy(dtype=float)
        return values.astype(np.int64) if np.all(values == np.round(values)) else values
    return np.array([str(v) for v in y.astype(object)], dtype=object)


def _split(
    n: int, y: np.ndarray | None, task: str, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n_holdout = math.ceil(fraction * n)
    stratify = None
    if task == CLASSIFICATION and y is not None:
        _, counts = np.unique(y, return_counts=True)
        # Stratification needs two rows per class and room for every class on each side.
        if counts.min() >= 2 and min(n_holdout, n - n_holdout) >= len(counts):
            stratify = y
    return train_test_split(
        np.arange(n), test_size=n_holdout, random_state=seed, shuffle=True, stratify=stratify
    )


def _jsonable_classes(classes: Any) -> list[Any]:
    return [c.item() if hasattr(c, "item") else c for c in classes]


def train_model(
    df: pd.DataFrame,
    *,
    target: str | None,
    features: list[str] | None,
    task: str | None,
    algorithm: str,
    params: dict,
    seed: int = 42,
    holdout_fraction: float = 0.2,
    exclude: Sequence[str] = (),
    threads: int = 1,
) -> TrainedModel:
    """Fit ``algorithm`` on ``df`` and package it (see ``TrainedModel``).

    Rows without a target value are dropped. The profile describes all rows used
    (training and holdout), the metrics the holdout only. ONNX is kept only when it
    reproduces the scikit-learn pipeline on the holdout (``onnx_parity`` says why not).
    ``threads`` bounds OpenMP/BLAS and is the ``n_jobs`` of estimators that take one
    (unless ``params`` set it).
    """
    _check_names(algorithm, task)
    if not 0 < holdout_fraction < 1:
        raise TrainingError("holdout_fraction must be between 0 and 1 (exclusive).")
    kinds = {str(name): kind_of_dtype(df[name].dtype) for name in df.columns}
    selected = _select_features(kinds, target, features, list(exclude))
    rows = df if target is None else df[df[target].notna()]
    if len(rows) < MIN_ROWS:
        what = "rows" if target is None else f"rows with a value for '{target}'"
        raise TrainingError(f"Too few {what}: {len(rows)} (at least {MIN_ROWS} needed).")

    task = task or infer_task(rows[target] if target is not None else None)
    _check_target(task, target, kinds.get(target) if target is not None else None)
    _check_task(algorithm, task)
    estimator = _configured_estimator(algorithm, task, params, seed)
    # Threads for the fit only: the stored model keeps the spec's n_jobs (serving decides).
    fit_jobs = (
        threads
        if threads > 1 and "n_jobs" not in params and "n_jobs" in estimator.get_params(deep=False)
        else None
    )

    y: np.ndarray | None = None
    if task == CLASSIFICATION:
        y = _class_labels(rows[target])
        if len(np.unique(y)) < 2:
            raise TrainingError(f"Target '{target}' has a single class; at least two are needed.")
    elif task == REGRESSION:
        y = pd.to_numeric(rows[target], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    # One thread for OpenMP/BLAS by default: a Functions worker shares its cores, and
    # OpenMP's spinning barriers slow HistGradientBoosting tenfold on a contended CPU.
    with native_threads(threads):
        return _fit_and_package(
            rows,
            selected,
            y,
            target=target,
            target_kind=kinds.get(target) if target is not None else None,
            task=task,
            algorithm=algorithm,
            estimator=estimator,
            seed=seed,
            holdout_fraction=holdout_fraction,
            fit_jobs=fit_jobs,
        )


def _fit_and_package(
    rows: pd.DataFrame,
    selected: list[dict[str, str]],
    y: np.ndarray | None,
    *,
    target: str | None,
    target_kind: str | None,
    task: str,
    algorithm: str,
    estimator: Any,
    seed: int,
    holdout_fraction: float,
    fit_jobs: int | None = None,
) -> TrainedModel:
    X = prepare_frame(rows, selected)
    train_idx, holdout_idx = _split(len(X), y, task, holdout_fraction, seed)
    X_train, X_holdout = X.iloc[train_idx], X.iloc[holdout_idx]
    y_train = y[train_idx] if y is not None else None
    y_holdout = y[holdout_idx] if y is not None else None

    pipeline = build_pipeline(
        selected,
        estimator,
        scale=algos.needs_scaling(algorithm),
        dense=algos.needs_dense_input(algorithm),
    )
    if fit_jobs:
        estimator.set_params(n_jobs=fit_jobs)
    sklearn_speedups()  # after the estimator's modules are loaded: the same trees, sooner
    try:
        pipeline.fit(X_train, y_train)
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"Training failed: {exc}") from None
    finally:
        if fit_jobs:
            estimator.set_params(n_jobs=None)

    classes = _jsonable_classes(pipeline.classes_) if task == CLASSIFICATION else None
    target_desc = None
    if target is not None:
        # Class labels are summarised as categories whatever their dtype.
        kind = NUMBER if task == REGRESSION else (BOOL if target_kind == BOOL else STRING)
        target_desc = {"name": target, "dtype": kind}

    # Metrics and the parity check ask the same questions on the same rows: answered once.
    answers = HoldoutOutputs(pipeline, X_holdout)
    row_scores = None
    if task == ANOMALY and hasattr(pipeline, "score_samples"):
        # The plots show every row's score, the metrics and the parity check the holdout's:
        # one pass over all rows answers both (a 100-tree forest's cost is mostly per call,
        # so scoring 2,000 rows took about as long as scoring their 400 holdout rows).
        row_scores = np.asarray(pipeline.score_samples(X), dtype=float)
        answers.remember("score_samples", row_scores[holdout_idx])
    onnx_bytes, export = export_onnx(pipeline, X_train, task, features=selected, classes=classes)
    parity = {"converted": False, "max_abs_diff": None, "verified": False, **export}
    if onnx_bytes is not None:
        parity = verify_parity(onnx_bytes, answers, X_holdout, task, features=selected)
        if not parity["verified"]:
            onnx_bytes = None

    return TrainedModel(
        task=task,
        algorithm=algorithm,
        params=algos.public_params(estimator),
        features=selected,
        target=target,
        classes=classes,
        metrics=holdout_metrics(task, answers, X_holdout, y_holdout),
        primary_metric=PRIMARY_METRIC[task],
        n_train=len(train_idx),
        n_holdout=len(holdout_idx),
        profile=build_profile(rows, selected, target=target_desc),
        skops_bytes=dump_skops(pipeline),
        onnx_bytes=onnx_bytes,
        onnx_parity=parity,
        estimator=pipeline,
        X_holdout=X_holdout,
        y_holdout=y_holdout,
        answers=answers,
        row_scores=row_scores,
    )
