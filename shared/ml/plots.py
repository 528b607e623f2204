"""The plots saved with a trained version: small PNGs, or the numbers to draw them from.

Classification: feature importance and the holdout confusion matrix. Regression: feature
importance and predicted vs actual on the holdout. Anomaly detection: the histogram of
the anomaly scores with the model's threshold, and the scores over time (the frame's
first datetime column, else row order) with the flagged rows marked - one per partition
for partitioned models, since each partition trains its own model. A whole model's plots
are drawn at training time; a partition keeps :func:`plot_data` and is drawn when viewed.

matplotlib is imported here only (training), with the Agg backend and the object API
(``Figure``, never ``pyplot``): no GUI, no global figure registry to leak or to close,
and safe to run in several threads of one worker.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from shared.ml.algorithms import ANOMALY, CLASSIFICATION, REGRESSION
from shared.ml.pipeline import DATETIME, kind_of_dtype, prepare_frame
from shared.ml.threads import native_threads

# Plot file names are ``{name}.png``; the HTTP edge serves only names of this form.
FEATURE_IMPORTANCE = "feature_importance"
CONFUSION_MATRIX = "confusion_matrix"
PREDICTED_VS_ACTUAL = "predicted_vs_actual"
ANOMALY_HISTOGRAM = "anomaly_score_histogram"
ANOMALY_OVER_TIME = "anomaly_scores_over_time"

TOP_FEATURES = 15
MAX_CONFUSION_CLASSES = 25
MAX_POINTS = 4000  # a scatter or time series is thinned beyond this (flagged rows kept)
PERMUTATION_ROWS = 200
FONT, TITLE_FONT = 8, 9
SIZE_INCHES, DPI = (6.0, 3.4), 96  # 576 x 326 px: readable on a laptop, tens of kB each

# Okabe-Ito colours (distinguishable with colour-vision deficiency); flagged points are
# also drawn with another marker, so colour is never the only cue.
BLUE, VERMILLION, GREY = "#0072B2", "#D55E00", "#555555"


def render_training_plots(trained: Any, frame: pd.DataFrame) -> dict[str, bytes]:
    """``{plot name: PNG bytes}`` for a ``TrainedModel`` and the rows it was trained on."""
    return {name: draw_plot(name, data) for name, data in plot_data(trained, frame).items()}


def plot_data(trained: Any, frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``{plot name: the numbers it shows}`` (JSON-ready, small: series are thinned).

    Computing them needs the model and the rows; drawing them (:func:`draw_plot`) needs
    neither, so a partitioned model keeps these numbers and draws a room's plot only when
    someone looks at it: drawing was 40% of a many-room training job.
    """
    makers: dict[str, Callable[[], dict[str, Any] | None]] = {}
    if trained.task in (CLASSIFICATION, REGRESSION):
        makers[FEATURE_IMPORTANCE] = lambda: _feature_importance_data(trained)
    if trained.task == CLASSIFICATION:
        makers[CONFUSION_MATRIX] = lambda: _confusion_matrix_data(trained)
    elif trained.task == REGRESSION:
        makers[PREDICTED_VS_ACTUAL] = lambda: _predicted_vs_actual_data(trained)
    elif trained.task == ANOMALY:
        # One OpenMP/BLAS thread, as in training: spinning barriers slow predictions
        # (and HistGradientBoosting's permutation importance) on a shared CPU.
        with native_threads(1):
            scores, flagged, threshold = _anomaly_scores(trained, frame)
        makers[ANOMALY_HISTOGRAM] = lambda: _histogram_data(scores, threshold)
        makers[ANOMALY_OVER_TIME] = lambda: _over_time_data(frame, scores, flagged, threshold)
    out = {}
    with native_threads(1):
        for name, make in makers.items():
            data = make()
            if data is not None:
                out[name] = data
    return out


def draw_plot(name: str, data: dict[str, Any]) -> bytes:
    """The PNG of plot ``name`` from its :func:`plot_data` numbers."""
    import matplotlib

    matplotlib.use("Agg")
    draw = {
        FEATURE_IMPORTANCE: _feature_importance,
        CONFUSION_MATRIX: _confusion_matrix,
        PREDICTED_VS_ACTUAL: _predicted_vs_actual,
        ANOMALY_HISTOGRAM: _score_histogram,
        ANOMALY_OVER_TIME: _scores_over_time,
    }[name]
    return _png(draw(data))


def _floats(values: Any) -> list[float | None]:
    """JSON numbers (6 significant digits: a plot shows no more); NaN/inf as null."""
    array = np.asarray(values, dtype=float)
    return [float(f"{v:.6g}") if np.isfinite(v) else None for v in array.tolist()]


def _array(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _figure(title: str, left: float = 0.12) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    # Fixed margins, not a layout engine: constrained layout measures every tick label
    # again and doubled the cost of a plot.
    figure = Figure(figsize=SIZE_INCHES, dpi=DPI)
    figure.subplots_adjust(left=left, right=0.97, top=0.9, bottom=0.16)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=TITLE_FONT)
    return figure, axes


def _png(figure: Any) -> bytes:
    # Font sizes are set per figure, not with rc_context: rcParams are process-global and
    # units of one worker draw in parallel threads.
    for axes in figure.axes:
        axes.xaxis.label.set_fontsize(FONT)
        axes.yaxis.label.set_fontsize(FONT)
        axes.tick_params(labelsize=FONT)
        legend = axes.get_legend()
        for text in legend.get_texts() if legend else []:
            text.set_fontsize(FONT - 1)
    buffer = io.BytesIO()
    # No "Software" text chunk: the same model draws the same bytes on every platform run.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    figure.clear()
    return buffer.getvalue()


# --- feature importance ----------------------------------------------------------------------


def feature_importances(trained: Any) -> dict[str, float]:
    """Importance per *input* feature: the estimator's own (impurity or |coefficient|,
    one-hot columns summed back to their feature) or else permutation importance on the
    holdout."""
    pipeline = trained.estimator
    estimator = pipeline.named_steps["model"]
    native = getattr(estimator, "feature_importances_", None)
    if native is None and getattr(estimator, "coef_", None) is not None:
        coef = np.abs(np.atleast_2d(estimator.coef_))
        native = coef.mean(axis=0)
    names = [f["name"] for f in trained.features]
    if native is not None:
        columns = pipeline.named_steps["preprocess"].get_feature_names_out()
        if len(columns) == len(native):
            return _sum_by_feature(names, trained.features, columns, np.asarray(native))
    return _permutation_importances(trained, names)


def _sum_by_feature(
    names: list[str], features: list[dict], columns: Any, values: np.ndarray
) -> dict[str, float]:
    totals = dict.fromkeys(names, 0.0)
    kind_of = {f["name"]: f["dtype"] for f in features}
    for column, value in zip(columns, values, strict=True):
        kind, _, rest = str(column).partition("__")
        # One-hot columns are "<feature>_<category>": the longest feature name that fits wins.
        owners = [
            n for n in names if kind_of[n] == kind and (rest == n or rest.startswith(n + "_"))
        ]
        if owners:
            totals[max(owners, key=len)] += float(value)
    return totals


def _permutation_importances(trained: Any, names: list[str]) -> dict[str, float]:
    from sklearn.inspection import permutation_importance

    X, y = trained.X_holdout, trained.y_holdout
    if X is None or y is None or len(X) < 2:
        return {}
    X, y = X.iloc[:PERMUTATION_ROWS], y[:PERMUTATION_ROWS]
    result = permutation_importance(trained.estimator, X, y, n_repeats=2, random_state=0)
    return {n: float(v) for n, v in zip(names, result.importances_mean, strict=True)}


def _feature_importance_data(trained: Any) -> dict[str, Any] | None:
    importances = feature_importances(trained)
    if not importances:
        return None
    top = sorted(importances.items(), key=lambda kv: kv[1], reverse=True)[:TOP_FEATURES]
    top.reverse()  # barh draws bottom-up: the most important ends on top
    return {"names": [n for n, _ in top], "values": _floats([v for _, v in top])}


def _feature_importance(data: dict[str, Any]) -> Any:
    names, values = data["names"], _array(data["values"])
    figure, axes = _figure(f"Feature importance (top {len(names)})", left=0.3)
    axes.barh([_short(n) for n in names], values, color=BLUE)
    axes.set_xlabel("importance")
    return figure


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- holdout quality -------------------------------------------------------------------------


def _confusion_matrix_data(trained: Any) -> dict[str, Any] | None:
    from sklearn.metrics import confusion_matrix

    classes = list(trained.estimator.classes_)
    if trained.X_holdout is None or len(classes) > MAX_CONFUSION_CLASSES:
        return None
    predicted = _holdout_answers(trained).predict(trained.X_holdout)
    matrix = confusion_matrix(trained.y_holdout, predicted, labels=classes)
    return {"classes": [str(c) for c in classes], "matrix": matrix.astype(int).tolist()}


def _confusion_matrix(data: dict[str, Any]) -> Any:
    classes = data["classes"]
    matrix = np.asarray(data["matrix"], dtype=int).reshape(len(classes), len(classes))
    figure, axes = _figure("Confusion matrix (holdout)")
    axes.imshow(matrix, cmap="Blues")
    labels = [_short(c, 12) for c in classes]
    axes.set_xticks(range(len(classes)), labels, rotation=45 if len(classes) > 4 else 0)
    axes.set_yticks(range(len(classes)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    high = matrix.max() / 2 if matrix.size else 0
    if len(classes) <= 12:
        for (row, col), count in np.ndenumerate(matrix):
            colour = "white" if count > high else "black"
            axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=FONT)
    return figure


def _predicted_vs_actual_data(trained: Any) -> dict[str, Any] | None:
    if trained.X_holdout is None or len(trained.X_holdout) == 0:
        return None
    actual = np.asarray(trained.y_holdout, dtype=float)
    predicted = np.asarray(_holdout_answers(trained).predict(trained.X_holdout), dtype=float)
    keep = _thin(len(actual), np.zeros(len(actual), dtype=bool))
    finite = np.concatenate([actual, predicted])
    finite = finite[np.isfinite(finite)]
    line = [float(finite.min()), float(finite.max())] if finite.size else None
    return {"actual": _floats(actual[keep]), "predicted": _floats(predicted[keep]), "line": line}


def _predicted_vs_actual(data: dict[str, Any]) -> Any:
    figure, axes = _figure("Predicted vs actual (holdout)")
    axes.scatter(_array(data["actual"]), _array(data["predicted"]), s=8, color=BLUE, alpha=0.7)
    if data["line"]:
        low, high = data["line"]
        axes.plot([low, high], [low, high], color=GREY, linestyle="--", linewidth=1)
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    return figure


# --- anomaly detection -----------------------------------------------------------------------


def _holdout_answers(trained: Any) -> Any:
    """The pipeline, or its answers on the holdout memoised in training (the metrics
    asked the same question of the same rows)."""
    return getattr(trained, "answers", None) or trained.estimator


def _anomaly_scores(trained: Any, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """Scores of every row (lower is more abnormal), which rows are flagged, the threshold."""
    pipeline = trained.estimator
    X = None
    row_scores = getattr(trained, "row_scores", None)
    if row_scores is not None and len(row_scores) == len(frame):
        scores = row_scores  # computed in training, over these rows
    else:
        X = prepare_frame(frame, trained.features)
        scores = np.asarray(pipeline.score_samples(X), dtype=float)
    threshold = float(getattr(pipeline.named_steps["model"], "offset_", np.nan))
    if np.isfinite(threshold):
        # predict() flags score_samples - offset_ < 0: the same answer without a second pass.
        flagged = scores < threshold
    else:
        X = prepare_frame(frame, trained.features) if X is None else X
        flagged = np.asarray(pipeline.predict(X)) == -1
    return scores, flagged, threshold


def _histogram_data(scores: np.ndarray, threshold: float) -> dict[str, Any]:
    finite = scores[np.isfinite(scores)]
    counts, edges = np.histogram(finite, bins=40) if finite.size else ([], [0.0, 1.0])
    return {
        "counts": [int(c) for c in counts],
        "edges": [float(e) for e in edges],
        "threshold": float(threshold) if np.isfinite(threshold) else None,
    }


def _score_histogram(data: dict[str, Any]) -> Any:
    figure, axes = _figure("Anomaly score distribution")
    edges = np.asarray(data["edges"], dtype=float)
    # The bars hist() would draw for the scores, from their bin counts.
    axes.hist(edges[:-1], bins=edges, weights=np.asarray(data["counts"]), color=BLUE)
    if data["threshold"] is not None:
        axes.axvline(data["threshold"], color=VERMILLION, linestyle="--", label="threshold")
        axes.legend(loc="upper left")
    axes.set_xlabel("score (lower is more abnormal)")
    axes.set_ylabel("rows")
    return figure


def time_column(frame: pd.DataFrame) -> str | None:
    """The frame's first datetime column, if it has one."""
    return next((str(c) for c in frame.columns if kind_of_dtype(frame[c].dtype) == DATETIME), None)


def _over_time_data(
    frame: pd.DataFrame, scores: np.ndarray, flagged: np.ndarray, threshold: float
) -> dict[str, Any]:
    column = time_column(frame)
    if column is not None:
        times = pd.to_datetime(frame[column], utc=True).dt.tz_localize(None)
        x = times.to_numpy().astype("datetime64[ms]").astype(np.int64)  # epoch ms
        order = np.argsort(x, kind="stable")
    else:
        x = np.arange(len(scores))
        order = x
    x, scores, flagged = x[order], scores[order], flagged[order]
    keep = _thin(len(scores), flagged)
    return {
        "x_label": column or "row",
        "x_is_time": column is not None,
        "x": [int(v) for v in x[keep]],
        "scores": _floats(scores[keep]),
        "flagged": np.flatnonzero(flagged[keep]).tolist(),  # positions in x / scores
        "n_flagged": int(flagged.sum()),
        "threshold": float(threshold) if np.isfinite(threshold) else None,
    }


def _scores_over_time(data: dict[str, Any]) -> Any:
    x = np.asarray(data["x"], dtype=np.int64)
    if data["x_is_time"]:
        x = x.astype("datetime64[ms]")
    scores, flagged = _array(data["scores"]), np.asarray(data["flagged"], dtype=np.int64)
    figure, axes = _figure("")
    # Title left, legend right, both above the plot: the series keeps the whole area.
    title = f"Anomaly score over time ({data['n_flagged']} flagged)"
    axes.set_title(title, loc="left", fontsize=TITLE_FONT)
    axes.plot(x, scores, color=BLUE, linewidth=0.8, label="score")
    axes.scatter(
        x[flagged], scores[flagged], color=VERMILLION, marker="x", s=18, label="flagged", zorder=3
    )
    if data["threshold"] is not None:
        axes.axhline(
            data["threshold"], color=GREY, linestyle="--", linewidth=0.8, label="threshold"
        )
    axes.set_xlabel(data["x_label"])
    axes.set_ylabel("score")
    axes.legend(
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=3,
        frameon=False,
        columnspacing=0.8,
        handlelength=1.2,
        borderaxespad=0.1,
    )
    if data["x_is_time"]:
        figure.autofmt_xdate()
    return figure


def _thin(n: int, always: np.ndarray) -> np.ndarray:
    """A boolean mask of at most about MAX_POINTS evenly spread rows, plus ``always``."""
    keep = np.zeros(n, dtype=bool)
    keep[:: max(1, n // MAX_POINTS)] = True
    return keep | always
