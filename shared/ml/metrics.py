"""Holdout metrics per task, as plain floats (JSON-ready)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

PRIMARY_METRIC = {"classification": "accuracy", "regression": "rmse", "anomaly": None}


def classification_metrics(
    y_true: Any, y_pred: Any, probabilities: Any, classes: list[Any]
) -> dict[str, float]:
    """accuracy, f1, precision, recall; roc_auc when binary and both classes are present.

    Binary scores treat the second class (sklearn's ``classes_[1]``) as the positive one;
    multiclass scores are macro averages, so rare classes count as much as common ones.
    """
    binary = len(classes) == 2
    average: dict[str, Any] = (
        {"average": "binary", "pos_label": classes[1]} if binary else {"average": "macro"}
    )
    out = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0, **average),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0, **average),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0, **average),
    }
    if binary and len(np.unique(np.asarray(y_true))) == 2:
        positive = np.asarray(y_true) == classes[1]
        out["roc_auc"] = skm.roc_auc_score(positive, np.asarray(probabilities)[:, 1])
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    out = {
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
    }
    # R^2 is undefined on fewer than two rows; leave it out rather than report NaN.
    if len(y_true) >= 2:
        out["r2"] = skm.r2_score(y_true, y_pred)
    return {k: float(v) for k, v in out.items()}


def anomaly_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """Share flagged (-1) and quantiles of ``score_samples`` (lower is more abnormal)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=float)
    p05, p50, p95 = np.quantile(scores, [0.05, 0.5, 0.95])
    return {
        "anomaly_rate": float(np.mean(labels == -1)),
        "score_p05": float(p05),
        "score_p50": float(p50),
        "score_p95": float(p95),
    }


def holdout_metrics(task: str, pipeline: Any, X: Any, y: Any = None) -> dict[str, float]:
    """The task's metrics for a fitted pipeline on prepared holdout features."""
    if task == "classification":
        classes = list(pipeline.classes_)
        return classification_metrics(y, pipeline.predict(X), pipeline.predict_proba(X), classes)
    if task == "regression":
        return regression_metrics(y, pipeline.predict(X))
    return anomaly_metrics(pipeline.predict(X), pipeline.score_samples(X))
