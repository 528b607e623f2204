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

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import AppError, NotFound, ValidationFailed
from shared.monitoring import partition_labels, version_info
from shared.monitoring.metrics import (
    ANOMALOUS,
    ANOMALY,
    CLASSIFICATION,
    NORMAL,
    REGRESSION,
    WorstRows,
    _missing,
    _ordered_labels,
    _plain,
    anomaly_flags,
    classification_summary,
    label_kind,
    regression_summary,
    to_label,
)
from shared.monitoring.schemas import (
    EvaluateRequest,
    EvaluationReport,
    SkippedRows,
    WorstRow,
)
from shared.names import check_name

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shared.datasets.store import DatasetStore
    from shared.prediction.engine import Predictor
    from shared.prediction.runtime import Servable
    from shared.registry.store import ModelRegistry

CHUNK_ROWS = 20_000


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
        from shared.prediction.runtime import kind

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
    from shared.prediction.runtime import Columns

    frame = prepare_frame(rows, features)
    cols = Columns(
        names=[f["name"] for f in features],
        kinds=[f["dtype"] for f in features],
        values=[frame[f["name"]].tolist() for f in features],
        n_rows=len(frame),
        ignored_fields=[],
    )
    try:
        return servable.run(cols, with_probabilities=True).as_lists()
    except AppError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model runtime's errors are the data's fault
        raise ModelFailed(
            f"The model could not score rows {int(rows.index[0])}..{int(rows.index[-1])}:"
            f" {str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__}"
        ) from None
