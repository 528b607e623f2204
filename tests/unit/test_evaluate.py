"""Evaluation arithmetic on synthetic numbers: metrics, confusion, residuals, worst rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from shared.errors import ValidationFailed
from shared.monitoring.metrics import (
    ANOMALOUS,
    NORMAL,
    WorstRows,
    anomaly_flags,
    classification_summary,
    confusion,
    label_kind,
    regression_summary,
    to_label,
)
from shared.monitoring.schemas import WorstRow


def test_binary_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 300)
    p1 = np.clip(y_true * 0.6 + rng.random(300) * 0.5, 0, 1)
    y_pred = (p1 > 0.5).astype(int)
    probabilities = np.column_stack([1 - p1, p1])
    metrics, matrix = classification_summary(
        y_true.tolist(), y_pred.tolist(), [0, 1], probabilities
    )
    assert metrics["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert metrics["f1"] == pytest.approx(skm.f1_score(y_true, y_pred))
    assert metrics["precision"] == pytest.approx(skm.precision_score(y_true, y_pred))
    assert metrics["recall"] == pytest.approx(skm.recall_score(y_true, y_pred))
    assert metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, p1))
    assert matrix.labels == [0, 1]
    assert matrix.matrix == skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist()


def test_multiclass_is_macro_averaged_with_string_labels() -> None:
    y_true = ["a", "a", "b", "c", "c", "c"]
    y_pred = ["a", "b", "b", "c", "a", "c"]
    metrics, matrix = classification_summary(y_true, y_pred, ["a", "b", "c"])
    assert metrics["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert "roc_auc" not in metrics
    assert matrix.matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_labels_the_model_never_learnt_widen_the_label_set() -> None:
    metrics, matrix = classification_summary([0, 1, 2, 2], [0, 1, 1, 0], [0, 1], None)
    assert matrix.labels == [0, 1, 2]
    assert matrix.matrix[2] == [1, 1, 0]
    assert metrics["accuracy"] == 0.5 and "roc_auc" not in metrics


def test_binary_without_probabilities_has_no_auc() -> None:
    metrics, _ = classification_summary([0, 1, 1, 0], [0, 1, 0, 0], [0, 1], None)
    assert "roc_auc" not in metrics and metrics["recall"] == 0.5


def test_confusion_counts_pairs() -> None:
    m = confusion(["x", "y", "y"], ["y", "y", "y"], ["x", "y"])
    assert m.matrix == [[0, 1], [0, 2]]


def test_regression_metrics_and_residuals() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.normal(50, 10, 1000)
    y_pred = y_true + rng.normal(2, 3, 1000)  # biased high by 2
    metrics, residuals = regression_summary(y_true.tolist(), y_pred.tolist())
    assert metrics["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert metrics["rmse"] == pytest.approx(skm.root_mean_squared_error(y_true, y_pred))
    assert metrics["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))
    r = y_true - y_pred
    assert residuals.mean == pytest.approx(r.mean()) and residuals.mean < -1.5
    assert residuals.std == pytest.approx(r.std())
    assert residuals.p05 < residuals.p50 < residuals.p95
    assert residuals.p50 == pytest.approx(np.median(r))


def test_regression_refuses_non_finite_predictions() -> None:
    with pytest.raises(ValidationFailed):
        regression_summary([1.0, 2.0], [1.0, float("nan")])


def test_labels_are_spelled_like_the_classes() -> None:
    assert label_kind([0, 1]) == "int" and label_kind([0.5, 1]) == "float"
    assert label_kind([True, False]) == "bool" and label_kind(["no", "yes"]) == "str"
    assert label_kind([np.int64(1), np.int64(0)]) == "int"
    assert to_label(1.0, "int") == 1 and isinstance(to_label(np.float64(1.0), "int"), int)
    assert to_label("yes", "bool") is True and to_label(0, "bool") is False
    assert to_label(3, "str") == "3" and to_label(float("nan"), "str") is None
    assert to_label(None, "int") is None


def test_anomaly_targets() -> None:
    assert anomaly_flags([-1, 1, 1]) == [ANOMALOUS, NORMAL, NORMAL]
    assert anomaly_flags([True, False]) == [ANOMALOUS, NORMAL]
    assert anomaly_flags([1, 0]) == [ANOMALOUS, NORMAL]  # 0/1: 1 marks the anomaly
    assert anomaly_flags(["yes", "no", "anomaly"]) == [ANOMALOUS, NORMAL, ANOMALOUS]
    with pytest.raises(ValidationFailed):
        anomaly_flags(["broken-sensor"])


def test_anomaly_metrics_treat_the_anomaly_as_positive() -> None:
    y_true = [NORMAL, NORMAL, ANOMALOUS, ANOMALOUS]
    y_pred = [NORMAL, ANOMALOUS, ANOMALOUS, NORMAL]
    scores = np.array([0.3, -0.1, -0.4, 0.05])  # lower = more abnormal
    metrics, matrix = classification_summary(
        y_true, y_pred, [NORMAL, ANOMALOUS], np.column_stack([scores, -scores])
    )
    assert metrics["recall"] == 0.5 and metrics["precision"] == 0.5
    assert metrics["roc_auc"] == pytest.approx(0.75)
    assert matrix.labels == [1, -1]


def test_worst_rows_keep_the_top_k_across_chunks_and_build_only_those() -> None:
    built: list[int] = []

    def maker(offset: int):
        def make(i: int) -> WorstRow:
            built.append(offset + i)
            return WorstRow(row=offset + i, actual=0, predicted=0, error=float(offset + i))

        return make

    worst = WorstRows(3)
    worst.offer([(float(i),) for i in range(100)], maker(0))
    worst.offer([(float(100 + i),) for i in range(2)], maker(100))
    worst.offer([(0.0,)] * 50, maker(200))
    assert [r.row for r in worst.rows()] == [101, 100, 99]
    assert len(built) == 5  # 3 of the first chunk, 2 of the second, none of the third
    assert WorstRows(0).rows() == []
