"""Evaluation of a model version on a labelled dataset: metrics, confusion or residuals,
and the rows it gets most wrong.

The model runs through the prediction path itself (``Predictor.servable`` + ``run``,
the ONNX export where the version has one), so the numbers describe what applications
get, not what the training process saw. The dataset is read in chunks and scored chunk
by chunk; at most ``max_rows`` rows (default 100,000) are evaluated, the first ones in
file order (``truncated`` says when rows were left), because metrics such as ROC AUC and
residual quantiles keep one value per row.

Partitioned models: each row goes to the model of its partition (the manifest's
``partition_by`` column); rows of partitions the version has no model for are counted in
``skipped_rows.unknown_partition``, rows without a target value in
``skipped_rows.missing_target``.

Worst rows: classification by misclassified first, then lowest probability of the true
class; regression by absolute error; anomaly models (evaluated against a column marking
anomalies) by misclassified first, then how confidently the score says otherwise.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import AppError, NotFound, ValidationFailed
from shared.monitoring import partition_labels, version_info
from shared.names import check_name

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shared.datasets import DatasetStore
    from shared.prediction.engine import Predictor, Servable
    from shared.registry.store import ModelRegistry

CHUNK_ROWS = 20_000
CLASSIFICATION, REGRESSION, ANOMALY = "classification", "regression", "anomaly"
NORMAL, ANOMALOUS = 1, -1  # scikit-learn's outlier convention, which the models output
_TRUE = {"true", "t", "yes", "y", "1", "1.0", "anomaly", "outlier"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", "normal", "inlier"}


# --- request and response bodies ---------------------------------------------------------


class EvaluateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(min_length=1, max_length=63, description="A labelled dataset.")
    target: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The label column; default: the target the version was trained on.",
    )
    partition: str | int | None = Field(
        default=None, description="Partitioned models: evaluate this partition only."
    )
    worst: int = Field(default=10, ge=0, le=100, description="How many worst rows to return.")
    max_rows: int = Field(default=100_000, ge=1, le=1_000_000)
    include_features: bool = Field(default=True, description="Feature values of worst rows.")


class ConfusionMatrix(BaseModel):
    labels: list[Any] = Field(description="Row i / column j: actual labels[i], predicted [j].")
    matrix: list[list[int]]


class Residuals(BaseModel):
    """Of actual - predicted."""

    mean: float
    std: float
    p05: float
    p50: float
    p95: float


class WorstRow(BaseModel):
    row: int = Field(description="0-based index of the row in the dataset.")
    partition: str | None = None
    actual: Any
    predicted: Any
    error: float = Field(
        description="Regression: |actual - predicted|. Classification: 1 - p(true class)"
        " (1/0 for wrong/right without probabilities). Anomaly: 1 if wrong, 0 if right."
    )
    probability: float | None = Field(default=None, description="p(true class) or score.")
    features: dict[str, Any] | None = None


class SkippedRows(BaseModel):
    missing_target: int = 0
    unknown_partition: int = 0


class EvaluationReport(BaseModel):
    model: str
    version: int
    partition: str | None
    dataset: str
    target: str
    task: str
    n_rows: int = Field(description="Rows evaluated.")
    skipped_rows: SkippedRows
    truncated: bool = Field(description="True when max_rows stopped the evaluation early.")
    metrics: dict[str, float]
    confusion_matrix: ConfusionMatrix | None
    residuals: Residuals | None
    worst_rows: list[WorstRow]


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
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for actual, predicted in zip(y_true, y_pred, strict=True):
        matrix[index[actual]][index[predicted]] += 1
    return ConfusionMatrix(labels=list(labels), matrix=matrix)


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


# --- the evaluation ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if _missing(value):
        return None
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value if isinstance(value, str | int | float | bool) else str(value)


class ModelFailed(ValidationFailed):
    """The model refused the dataset's rows (types or shapes its runtime cannot take)."""

    code, title = "MODEL_FAILED_ON_DATA", "The model could not score the data"


@dataclass
class _Collected:
    """What an evaluation keeps per row until the metrics are computed."""

    task: str
    label_kind: str | None = None
    classes: list[Any] | None = None
    y_true: list[Any] = field(default_factory=list)
    y_pred: list[Any] = field(default_factory=list)
    probabilities: list[Any] = field(default_factory=list)
    probabilities_usable: bool = True
    scores: list[float] = field(default_factory=list)


class Evaluator:
    def __init__(
        self, registry: ModelRegistry, predictor: Predictor, datasets: DatasetStore
    ) -> None:
        self.registry = registry
        self.predictor = predictor
        self.datasets = datasets

    def evaluate(self, name: str, version: int, body: EvaluateRequest) -> EvaluationReport:
        from shared.prediction.inputs import kind

        check_name(name, "model")
        check_name(body.dataset, "dataset")
        info = version_info(self.registry, name, version)  # 404 model / version
        partition = None if body.partition is None else str(body.partition)
        partition_by: str | None = None
        known: set[str] = set()
        servables: dict[str | None, Servable] = {}
        if info.format == "partitioned":
            manifest = self.predictor.loader.load(name, version).model
            partition_by = manifest.get("partition_by")
            known = set(manifest.get("partitions", {}))
            features = manifest.get("features") or [f.model_dump() for f in info.features or []]
            task = manifest.get("task") or info.task
            if partition is not None and partition not in known:
                raise NotFound(
                    f"{name} version {version} has no partition '{partition[:100]}'.",
                    code="PARTITION_NOT_FOUND",
                )
        else:
            partition = None  # a partition means nothing to an unpartitioned model
            servables[None], _ = self.predictor.servable(name, version)
            features, task = servables[None].features, servables[None].task
            if task is None:  # an upload that did not say: classes mean classification
                task = CLASSIFICATION if servables[None].classes else REGRESSION
        recorded = info.params.get("target")
        if body.target and recorded and body.target != recorded:
            # Any other column would turn evaluation into a reader of arbitrary columns.
            raise ValidationFailed(
                f"{name} version {version} was trained on target '{recorded}'; evaluate on it.",
                code="TARGET_MISMATCH",
            )
        target = body.target or recorded
        if not target:
            raise ValidationFailed(
                f"{name} version {version} is an anomaly model trained without a target:"
                " nothing to evaluate. Send 'target' naming a column that marks anomalies."
                if task == ANOMALY
                else f"{name} version {version} records no target; send 'target'."
            )
        task = task or CLASSIFICATION
        canonical = [{"name": f["name"], "dtype": kind(f.get("dtype", "number"))} for f in features]
        names = [f["name"] for f in canonical]
        available = {c.name for c in self.datasets.get(body.dataset).columns}  # 404
        wanted = list(dict.fromkeys([*names, target, *([partition_by] if partition_by else [])]))
        absent = [c for c in wanted if c not in available]
        if absent:
            raise ValidationFailed(
                f"Dataset '{body.dataset}' lacks column(s) the evaluation needs:"
                f" {', '.join(absent[:20])}."
            )

        collected = _Collected(task)
        worst = WorstRows(body.worst)
        skipped = SkippedRows()
        evaluated, offset, truncated = 0, 0, False
        for chunk in self.datasets.iter_frames(body.dataset, columns=wanted, chunksize=CHUNK_ROWS):
            chunk = chunk.set_axis(range(offset, offset + len(chunk)), axis=0)
            offset += len(chunk)
            if partition_by:
                labels = partition_labels(chunk[partition_by], known)
                if partition is not None:
                    keep = labels == partition
                else:
                    keep = labels != None  # noqa: E711 - elementwise on an object array
                    skipped.unknown_partition += int((~keep).sum())
                chunk, labels = chunk[keep], labels[keep]
            else:
                labels = None
            actual = chunk[target]
            if task == REGRESSION:
                import pandas as pd

                actual = pd.to_numeric(actual, errors="coerce")
            present = actual.notna().to_numpy(dtype=bool)
            skipped.missing_target += int((~present).sum())
            chunk, actual = chunk[present], actual[present]
            labels = labels[present] if labels is not None else None
            if len(chunk) and evaluated >= body.max_rows:
                truncated = True
                break
            if len(chunk) > body.max_rows - evaluated:
                truncated = True
                keep_n = body.max_rows - evaluated
                chunk, actual = chunk.iloc[:keep_n], actual.iloc[:keep_n]
                labels = labels[:keep_n] if labels is not None else None
            groups = [(None, slice(None))] if labels is None else _groups(labels)
            for key, selector in groups:
                if key not in servables:
                    servables[key], _ = self.predictor.servable(name, version, partition=key)
                rows, truth = chunk.iloc[selector], actual.iloc[selector]
                outputs = _score(servables[key], rows, canonical)
                self._collect(collected, worst, rows, truth, outputs, key, names, body)
                evaluated += len(rows)
        report = EvaluationReport(
            model=name,
            version=version,
            partition=partition,
            dataset=body.dataset,
            target=target,
            task=task,
            n_rows=evaluated,
            skipped_rows=skipped,
            truncated=truncated,
            metrics={},
            confusion_matrix=None,
            residuals=None,
            worst_rows=worst.rows(),
        )
        if evaluated == 0:
            raise ValidationFailed(
                f"No row of '{body.dataset}' could be evaluated (rows without '{target}':"
                f" {skipped.missing_target}, of unknown partitions: {skipped.unknown_partition})."
            )
        self._summarize(collected, report)
        return report

    # -- per chunk --

    def _collect(
        self,
        c: _Collected,
        worst: WorstRows,
        rows: pd.DataFrame,
        truth: pd.Series,
        outputs: dict[str, Any],
        partition: str | None,
        names: list[str],
        body: EvaluateRequest,
    ) -> None:
        import numpy as np

        predicted = outputs["predictions"]
        badness: list[tuple[float, ...]]
        details: list[tuple[Any, Any, float, float | None]]  # actual, predicted, error, prob
        if c.task == REGRESSION:
            actual = truth.to_numpy(dtype=float)
            pred = np.asarray(predicted, dtype=float).ravel()
            c.y_true.extend(actual.tolist())
            c.y_pred.extend(pred.tolist())
            errors = np.abs(actual - pred)
            badness = [(float(e),) for e in errors]
            details = [
                (float(a), float(p), float(e), None)
                for a, p, e in zip(actual, pred, errors, strict=True)
            ]
        elif c.task == ANOMALY:
            actual = anomaly_flags(truth.tolist())
            pred = [ANOMALOUS if int(p) == ANOMALOUS else NORMAL for p in predicted]
            scores = [float(s) for s in outputs.get("scores") or [0.0] * len(pred)]
            c.y_true.extend(actual)
            c.y_pred.extend(pred)
            c.scores.extend(scores)
            # Higher score = more normal: an anomaly the model scored high is worst.
            badness = [
                (float(a != p), s if a == ANOMALOUS else -s)
                for a, p, s in zip(actual, pred, scores, strict=True)
            ]
            details = [
                (a, p, float(a != p), s) for a, p, s in zip(actual, pred, scores, strict=True)
            ]
        else:
            if c.label_kind is None:
                c.label_kind = label_kind(outputs.get("classes") or list(predicted))
            k = c.label_kind
            actual = [to_label(v, k) for v in truth.tolist()]
            pred = [to_label(v, k) for v in predicted]
            c.y_true.extend(actual)
            c.y_pred.extend(pred)
            probs, classes = outputs.get("probabilities"), outputs.get("classes")
            p_true: list[float | None] = [None] * len(pred)
            if probs is not None and classes is not None:
                classes = [to_label(v, k) for v in classes]
                if c.classes is None:
                    c.classes = classes
                # float32 ONNX outputs stray a hair outside [0, 1]; errors read 1 - p.
                matrix = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
                where = {label: i for i, label in enumerate(classes)}
                p_true = [
                    float(matrix[i, where[a]]) if a in where else 0.0 for i, a in enumerate(actual)
                ]
                if classes == c.classes and c.probabilities_usable:
                    c.probabilities.append(matrix)
                else:  # partitions that learnt different classes: no common ROC AUC
                    c.probabilities_usable = False
            else:
                c.probabilities_usable = False
                if c.classes is None and classes is not None:
                    c.classes = [to_label(v, k) for v in classes]
            wrong = [float(a != p) for a, p in zip(actual, pred, strict=True)]
            badness = [
                (w, 1.0 - q if q is not None else w) for w, q in zip(wrong, p_true, strict=True)
            ]
            details = [
                (a, p, 1.0 - q if q is not None else w, q)
                for a, p, w, q in zip(actual, pred, wrong, p_true, strict=True)
            ]

        def make(i: int) -> WorstRow:
            actual_value, predicted_value, error, probability = details[i]
            features = None
            if body.include_features:
                features = {n: _jsonable(rows[n].iat[i]) for n in names}
            return WorstRow(
                row=int(rows.index[i]),
                partition=partition,
                actual=_jsonable(actual_value),
                predicted=_jsonable(predicted_value),
                error=float(error),
                probability=probability,
                features=features,
            )

        worst.offer(badness, make)

    def _summarize(self, c: _Collected, report: EvaluationReport) -> None:
        import numpy as np

        from shared.ml.metrics import anomaly_metrics

        if c.task == REGRESSION:
            report.metrics, report.residuals = regression_summary(c.y_true, c.y_pred)
            return
        if c.task == ANOMALY:
            classes: list[Any] = [NORMAL, ANOMALOUS]  # the anomaly is the positive class
            # ROC AUC ranks rows by how abnormal the model finds them: lower score = more.
            scores = np.asarray(c.scores, dtype=float)
            probabilities = np.column_stack([scores, -scores])
            report.metrics, report.confusion_matrix = classification_summary(
                c.y_true, c.y_pred, classes, probabilities
            )
            report.metrics.update(anomaly_metrics(c.y_pred, c.scores))
            return
        classes = c.classes or _ordered_labels([], c.y_true, c.y_pred)
        probabilities = (
            np.vstack(c.probabilities) if c.probabilities_usable and c.probabilities else None
        )
        report.metrics, report.confusion_matrix = classification_summary(
            c.y_true, c.y_pred, classes, probabilities
        )


def _groups(labels: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Row positions per partition key, in order of first appearance."""
    import numpy as np

    keys = list(dict.fromkeys(labels.tolist()))
    return [(key, np.flatnonzero(labels == key)) for key in keys]


def _score(servable: Servable, rows: pd.DataFrame, features: list[dict[str, str]]) -> dict:
    """The prediction path on a chunk: canonical columns (as check_records makes them) + run."""
    from shared.ml.pipeline import prepare_frame
    from shared.prediction.engine import run
    from shared.prediction.inputs import Columns

    frame = prepare_frame(rows, features)
    cols = Columns(
        names=[f["name"] for f in features],
        kinds=[f["dtype"] for f in features],
        values=[frame[f["name"]].tolist() for f in features],
        n_rows=len(frame),
        ignored_fields=[],
    )
    try:
        return run(servable, cols, with_probabilities=True)
    except AppError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model runtime's errors are the data's fault
        raise ModelFailed(
            f"The model could not score rows {int(rows.index[0])}..{int(rows.index[-1])}:"
            f" {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
        ) from None
