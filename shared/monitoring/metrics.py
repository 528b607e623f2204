"""Evaluation metrics, pure: labels read as the model's classes, summaries, the worst rows."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Any

from shared.errors import ValidationFailed
from shared.monitoring.schemas import ConfusionMatrix, Residuals, WorstRow

CLASSIFICATION, REGRESSION, ANOMALY = "classification", "regression", "anomaly"
NORMAL, ANOMALOUS = 1, -1  # scikit-learn's outlier convention, which the models output
_TRUE = {"true", "t", "yes", "y", "1", "1.0", "anomaly", "outlier"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", "normal", "inlier"}


# --- labels ---------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and NaT differ from themselves
    except (TypeError, ValueError):
        return True  # pd.NA refuses bool()


def label_kind(labels: Sequence[Any]) -> str:
    """How class labels are spelled: ``bool``, ``int``, ``float`` or ``str``."""
    values = [_plain(v) for v in labels if not _missing(v)]
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "int" if all(float(v).is_integer() for v in values) else "float"
    return "str"


def to_label(value: Any, kind: str) -> Any:
    """One label in the classes' spelling, so 1, 1.0 and True meet where they should."""
    if _missing(value):
        return None
    value = _plain(value)
    if kind == "bool":
        if isinstance(value, str):
            text = value.strip().lower()
            return True if text in _TRUE else False if text in _FALSE else value
        return bool(value)
    if kind in ("int", "float"):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return int(number) if kind == "int" and number.is_integer() else number
    return str(value)


def anomaly_flags(values: Sequence[Any]) -> list[int]:
    """A target marking anomalies as the models do: -1/1 as they are; True/1/"yes" = anomaly."""
    plain = [_plain(v) for v in values]
    numbers = [v for v in plain if isinstance(v, int | float) and not isinstance(v, bool)]
    signed = bool(numbers) and len(numbers) == len(plain) and set(numbers) <= {-1, 1}
    out = []
    for value in plain:
        if signed:
            out.append(ANOMALOUS if value == -1 else NORMAL)
            continue
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in _TRUE or text in _FALSE:
            flagged = value if isinstance(value, bool) else text in _TRUE
            out.append(ANOMALOUS if flagged else NORMAL)
        else:
            raise ValidationFailed(
                f"The target of an anomaly model must mark anomalies (-1/1, true/false, 1/0);"
                f" found {str(value)[:40]!r}."
            )
    return out


# --- metrics (pure) -------------------------------------------------------------------------


def confusion(
    y_true: Sequence[Any], y_pred: Sequence[Any], labels: Sequence[Any]
) -> ConfusionMatrix:
    """Counts of (actual, predicted) pairs over ``labels`` (actual labels as rows)."""
    from sklearn.metrics import confusion_matrix

    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not len(y_true):  # scikit-learn refuses empty input; the matrix is all zeros
        return ConfusionMatrix(labels=list(labels), matrix=[[0] * len(labels) for _ in labels])
    # Labels may mix types (the model's classes plus unseen ones): count their positions.
    index = {label: i for i, label in enumerate(labels)}
    matrix = confusion_matrix(
        [index[a] for a in y_true], [index[p] for p in y_pred], labels=list(range(len(labels)))
    )
    return ConfusionMatrix(labels=list(labels), matrix=matrix.tolist())


def _ordered_labels(classes: Sequence[Any], *observed: Sequence[Any]) -> list[Any]:
    seen = set(classes)
    extra = {v for values in observed for v in values if v not in seen}
    return list(classes) + sorted(extra, key=lambda v: (type(v).__name__, str(v)))


def classification_summary(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    classes: Sequence[Any],
    probabilities: Any = None,
) -> tuple[dict[str, float], ConfusionMatrix]:
    """shared.ml.metrics' classification metrics and the confusion matrix.

    ``probabilities`` (rows x ``classes``) feeds ROC AUC when the task is binary. Labels
    in the data that the model never learnt widen the label set (so scores become macro
    averages, as for any multiclass problem) rather than fail.
    """
    import numpy as np

    from shared.ml.metrics import classification_metrics

    labels = _ordered_labels(classes, y_true, y_pred)
    truth, predicted = np.asarray(list(y_true)), np.asarray(list(y_pred))
    binary = len(labels) == 2
    have_probabilities = probabilities is not None and binary and list(labels) == list(classes)
    if have_probabilities:
        scores = np.asarray(probabilities, dtype=float)
    else:  # hard labels: enough for every metric except ROC AUC, which is dropped below
        scores = np.array([[float(p == c) for c in labels] for p in y_pred]).reshape(
            len(y_pred), len(labels)
        )
    try:
        metrics = classification_metrics(truth, predicted, scores, labels)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed(f"The labels cannot be scored: {exc}") from None
    if not have_probabilities:
        metrics.pop("roc_auc", None)
    return metrics, confusion(y_true, y_pred, labels)


def regression_summary(
    y_true: Sequence[float], y_pred: Sequence[float]
) -> tuple[dict[str, float], Residuals]:
    """MAE, RMSE, R^2 (shared.ml.metrics) and quantiles of actual - predicted."""
    import numpy as np

    from shared.ml.metrics import regression_metrics

    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if not np.all(np.isfinite(predicted)):
        raise ValidationFailed("The model returned non-finite predictions for some rows.")
    residuals = truth - predicted
    p05, p50, p95 = np.quantile(residuals, [0.05, 0.5, 0.95])
    return regression_metrics(truth, predicted), Residuals(
        mean=float(residuals.mean()),
        std=float(residuals.std()),
        p05=float(p05),
        p50=float(p50),
        p95=float(p95),
    )


class WorstRows:
    """The ``k`` rows with the largest badness seen so far (memory: k rows)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._rows: list[tuple[tuple[float, ...], int, WorstRow]] = []

    def offer(self, badness: Sequence[tuple[float, ...]], make: Any) -> None:
        """``badness`` per row of a chunk; ``make(i)`` builds row ``i`` only if it is kept."""
        if self.k == 0 or not badness:
            return
        floor = self._rows[-1][0] if len(self._rows) >= self.k else None
        best = heapq.nlargest(self.k, range(len(badness)), key=lambda i: badness[i])
        for i in best:
            if floor is not None and badness[i] <= floor:
                break
            row = make(i)
            self._rows.append((badness[i], -row.row, row))
        self._rows = heapq.nlargest(self.k, self._rows, key=lambda r: (r[0], r[1]))

    def rows(self) -> list[WorstRow]:
        return [r[2] for r in self._rows]
