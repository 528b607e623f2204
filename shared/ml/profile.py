"""The training profile: a per-feature summary kept with a model version for drift checks.

Shape (JSON-serialisable, no numpy types, no NaN)::

    {"n_rows": int,
     "features": {name: {"dtype": "number", "count", "missing", "mean", "std", "min", "max",
                         "quantiles": {"probs": [0, .05, ..., 1], "values": [21 floats]},
                         "histogram": {"edges": [...], "counts": [...]}}
                  | {"dtype": "string"|"bool", "count", "missing", "n_categories",
                     "categories": {value: frequency, ..., "__other__": frequency}}},
     "target": {...}}   # same per-column shape, when the model has a target

Numeric histograms bin on the training quantiles (deduplicated), so each bin holds about
5% of the training rows and a shifted distribution shows as uneven counts (PSI-ready).
Category frequencies are shares of the non-missing values; bools are ``"true"/"false"``.
Statistics that are undefined (all values missing) are ``None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from shared.ml.pipeline import BOOL, NUMBER, describe_features, prepare_frame

QUANTILE_PROBS = [round(i * 0.05, 2) for i in range(21)]
MAX_CATEGORIES = 50
OTHER = "__other__"


def _number(values: np.ndarray) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    out: dict[str, Any] = {
        "dtype": NUMBER,
        "count": int(present.size),
        "missing": int(values.size - present.size),
    }
    if present.size == 0:
        out.update(mean=None, std=None, min=None, max=None, quantiles=None, histogram=None)
        return out
    quantiles = np.quantile(present, QUANTILE_PROBS)
    edges = np.unique(quantiles)
    if edges.size == 1:  # a constant: one degenerate bin holding everything
        edges, counts = np.array([edges[0], edges[0]]), np.array([present.size])
    else:
        counts, _ = np.histogram(present, bins=edges)
    out.update(
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present.min()),
        max=float(present.max()),
        quantiles={"probs": list(QUANTILE_PROBS), "values": [float(q) for q in quantiles]},
        histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    )
    return out


def _categories(values: pd.Series, dtype: str) -> dict[str, Any]:
    present = values.dropna()
    counts = present.value_counts(sort=True)
    total = int(present.size)
    top = counts.iloc[:MAX_CATEGORIES]
    categories = {str(k): float(v / total) for k, v in top.items()}
    rest = int(counts.iloc[MAX_CATEGORIES:].sum())
    if rest:
        categories[OTHER] = float(rest / total)
    return {
        "dtype": dtype,
        "count": total,
        "missing": int(values.size - total),
        "n_categories": int(counts.size),
        "categories": categories,
    }


def profile_column(values: np.ndarray, dtype: str) -> dict[str, Any]:
    """Summary of one column already in canonical form (see ``pipeline.prepare_frame``)."""
    if dtype == NUMBER:
        return _number(np.asarray(values, dtype=float))
    if dtype == BOOL:
        floats = np.asarray(values, dtype=float)
        labels = pd.Series(np.where(floats == 1, "true", "false"), dtype=object)
        return _categories(labels.where(~np.isnan(floats)), BOOL)
    text = pd.Series(values, dtype=object)
    return _categories(text.where(text != ""), dtype)


def build_profile(
    df: pd.DataFrame,
    features: Sequence[str | dict[str, str]],
    target: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Profile the given features (names, or ``{"name", "dtype"}`` dicts) of ``df``.

    Raw and already-prepared frames give the same profile: values go through
    ``prepare_frame`` first, exactly as the model sees them.
    """
    described = [f if isinstance(f, dict) else describe_features(df, [f])[0] for f in features]
    columns = described + ([target] if target else [])
    frame = prepare_frame(df, columns)
    out: dict[str, Any] = {
        "n_rows": len(df),
        "features": {f["name"]: profile_column(frame[f["name"]], f["dtype"]) for f in described},
    }
    if target:
        out["target"] = profile_column(frame[target["name"]], target["dtype"])
    return out
