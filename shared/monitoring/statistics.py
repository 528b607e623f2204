"""Drift statistics, pure: arrays in, numbers out (KS against a quantile CDF, PSI, chi-square).

The statistical choices are explained in ``shared.monitoring.drift``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.monitoring.schemas import FeatureDrift

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MIN_VALUES = 20
MAX_SAMPLE_ROWS = 100_000
PSEUDO_COUNT = 0.5
MIN_EXPECTED = 5.0
OTHER = "__other__"
NUMBER, BOOL = "number", "bool"
SEED = 20240601


# --- statistics (pure: arrays in, numbers out) ---------------------------------------------


class QuantileCdf:
    """The training CDF rebuilt from quantiles, piecewise linear between them.

    Tied quantiles make it jump: at a knot ``x`` the right limit is the largest
    probability recorded at ``x`` and the left limit the smallest.
    """

    def __init__(self, values: Sequence[float], probs: Sequence[float]) -> None:
        import numpy as np

        v = np.asarray(values, dtype=float)
        p = np.asarray(probs, dtype=float)
        if v.size != p.size or v.size < 2 or not np.all(np.isfinite(v)):
            raise ValueError("quantiles and probabilities must be finite and paired")
        if np.any(np.diff(v) < 0) or np.any(np.diff(p) < 0) or p[0] != 0 or p[-1] != 1:
            raise ValueError("quantiles must run from probability 0 to 1, non-decreasing")
        self.knots, inverse = np.unique(v, return_inverse=True)
        self.low = np.full(self.knots.size, np.inf)
        self.high = np.full(self.knots.size, -np.inf)
        np.minimum.at(self.low, inverse, p)
        np.maximum.at(self.high, inverse, p)
        self.continuous = bool(np.all(self.low == self.high))

    def __call__(self, x: Any) -> np.ndarray:
        """Right-continuous F(x)."""
        import numpy as np

        x = np.atleast_1d(np.asarray(x, dtype=float))
        knots = self.knots
        i = np.searchsorted(knots, x, side="right") - 1
        out = np.where(i < 0, 0.0, 1.0)
        inside = (i >= 0) & (i < knots.size - 1)
        j = i[inside]
        share = (x[inside] - knots[j]) / (knots[j + 1] - knots[j])
        out[inside] = self.high[j] + share * (self.low[j + 1] - self.high[j])
        return out

    def left(self, x: Any) -> np.ndarray:
        """F(x-): differs from F(x) only at the jumps."""
        import numpy as np

        x = np.atleast_1d(np.asarray(x, dtype=float))
        out = self(x)
        j = np.searchsorted(self.knots, x, side="left")
        hit = j < self.knots.size
        hit[hit] = self.knots[j[hit]] == x[hit]
        out[hit] = self.low[j[hit]]
        return out


def ks_statistic(values: np.ndarray, cdf: QuantileCdf) -> float:
    """sup |F_new - F_train|: ``scipy.stats.kstest`` for a continuous CDF, else with jumps."""
    from scipy import stats

    if cdf.continuous:
        return float(stats.kstest(values, cdf).statistic)
    return ks_statistic_with_jumps(values, cdf)


def ks_statistic_with_jumps(values: np.ndarray, cdf: QuantileCdf) -> float:
    """The KS distance against a CDF that may jump (equals kstest's where it does not)."""
    import numpy as np

    # Between two consecutive sample values the ECDF is flat and F monotone, so the
    # supremum is reached at a sample value: compare right limits, then left limits.
    points, counts = np.unique(values, return_counts=True)
    right = np.cumsum(counts) / values.size
    left = right - counts / values.size
    return float(max(np.max(np.abs(right - cdf(points))), np.max(np.abs(left - cdf.left(points)))))


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sample calibration: the Kolmogorov distribution at n_eff = n*m/(n+m)."""
    from scipy import stats

    n_eff = max(1, round(n * m / (n + m))) if m > 0 else n
    return float(min(1.0, max(0.0, stats.kstwo.sf(statistic, n_eff))))


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same bins (half-count smoothed)."""
    import numpy as np

    e = np.asarray(expected, dtype=float) + PSEUDO_COUNT
    a = np.asarray(actual, dtype=float) + PSEUDO_COUNT
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def histogram_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts of ``values`` in the profile's bins, values outside the range in the end bins."""
    import numpy as np

    e = np.asarray(edges, dtype=float)
    if e[0] == e[-1]:  # a constant in training: "the constant" vs "anything else"
        same = int(np.sum(values == e[0]))
        return np.array([same, values.size - same])
    counts, _ = np.histogram(np.clip(values, e[0], e[-1]), bins=e)
    return counts


@dataclass(frozen=True)
class Thresholds:
    p_value: float = 0.05
    psi: float = 0.2


def _skipped(name: str, kind: str, n: int, missing: int, reason: str) -> FeatureDrift:
    return FeatureDrift(
        name=name,
        kind="numeric" if kind == NUMBER else "categorical",
        test="ks" if kind == NUMBER else "chi2",
        statistic=None,
        p_value=None,
        psi=None,
        drift=None,
        n=n,
        missing=missing,
        reason=reason,
    )


def _verdict(p_value: float, psi_value: float, t: Thresholds) -> bool:
    return p_value < t.p_value and psi_value >= t.psi


def numeric_drift(
    name: str, values: np.ndarray, feature: dict[str, Any], t: Thresholds
) -> FeatureDrift:
    """KS against the reconstructed training CDF and PSI on the training histogram."""
    import numpy as np

    present = values[~np.isnan(values)]
    missing = int(values.size - present.size)
    if present.size < MIN_VALUES:
        return _skipped(
            name, NUMBER, int(present.size), missing, f"fewer than {MIN_VALUES} values to compare"
        )
    quantiles, histogram = feature.get("quantiles"), feature.get("histogram")
    m = int(feature.get("count") or 0)
    if not quantiles or not histogram or m <= 0:
        return _skipped(name, NUMBER, int(present.size), missing, "no training values")
    try:
        cdf = QuantileCdf(quantiles["values"], quantiles["probs"])
        edges, expected = histogram["edges"], histogram["counts"]
        if len(edges) < 2:
            raise ValueError("a histogram needs two edges")
        if edges[0] == edges[-1]:
            expected = [sum(expected), 0]
        elif len(expected) != len(edges) - 1:
            raise ValueError("histogram counts do not match its edges")
    except (KeyError, TypeError, ValueError) as exc:
        return _skipped(name, NUMBER, int(present.size), missing, f"profile unusable: {exc}")
    statistic = ks_statistic(present, cdf)
    p_value = ks_p_value(statistic, int(present.size), m)
    psi_value = psi(expected, histogram_counts(present, edges))
    return FeatureDrift(
        name=name,
        kind="numeric",
        test="ks",
        statistic=statistic,
        p_value=p_value,
        psi=psi_value,
        drift=_verdict(p_value, psi_value, t),
        n=int(present.size),
        missing=missing,
    )


def categorical_drift(
    name: str, values: Sequence[str | None], feature: dict[str, Any], t: Thresholds
) -> FeatureDrift:
    """Chi-square of category counts against the training frequencies, and PSI over them."""
    import numpy as np
    from scipy import stats

    present = [v for v in values if v is not None]
    missing = len(values) - len(present)
    n = len(present)
    kind = str(feature.get("dtype") or "string")
    if n < MIN_VALUES:
        return _skipped(name, kind, n, missing, f"fewer than {MIN_VALUES} values to compare")
    frequencies = feature.get("categories")
    m = int(feature.get("count") or 0)
    if not isinstance(frequencies, dict) or not frequencies or m <= 0:
        return _skipped(name, kind, n, missing, "no training values")
    names = [str(c) for c in frequencies if c != OTHER] + [OTHER]
    index = {c: i for i, c in enumerate(names)}
    observed = np.zeros(len(names))
    for value, count in Counter(present).items():
        observed[index.get(value, index[OTHER])] += count
    train_counts = np.array([float(frequencies.get(c, 0.0)) * m for c in names])
    share = (train_counts + PSEUDO_COUNT) / (train_counts.sum() + PSEUDO_COUNT * len(names))
    expected = n * share
    # Pool the cells too rare for the chi-square approximation into one.
    rare = expected < MIN_EXPECTED
    cells_obs = list(observed[~rare]) + ([observed[rare].sum()] if rare.any() else [])
    cells_exp = list(expected[~rare]) + ([expected[rare].sum()] if rare.any() else [])
    psi_value = psi(train_counts, observed)
    if len(cells_obs) < 2:
        return _skipped(
            name, kind, n, missing, "too few values for a chi-square test over these categories"
        )
    raw = float(stats.chisquare(cells_obs, cells_exp).statistic)
    statistic = raw * m / (n + m)
    p_value = float(stats.chi2.sf(statistic, len(cells_obs) - 1))
    return FeatureDrift(
        name=name,
        kind="categorical",
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        psi=psi_value,
        drift=_verdict(p_value, psi_value, t),
        n=n,
        missing=missing,
    )


def compare(
    profile: dict[str, Any], columns: dict[str, np.ndarray], t: Thresholds
) -> list[FeatureDrift]:
    """One result per profiled feature; ``columns`` holds canonical values (see below)."""
    import numpy as np

    out = []
    for name, feature in profile.get("features", {}).items():
        kind = str(feature.get("dtype") or "")
        values = columns.get(name)
        if values is None:
            out.append(_skipped(name, kind, 0, 0, "not in the data"))
            continue
        try:
            if kind == NUMBER:
                out.append(numeric_drift(name, np.asarray(values, dtype=float), feature, t))
            else:
                out.append(categorical_drift(name, list(values), feature, t))
        except (KeyError, TypeError, ValueError) as exc:
            # A hand-made profile.json (uploads) may hold anything: report, do not fail.
            out.append(_skipped(name, kind, len(values), 0, f"profile unusable: {exc}"[:200]))
    return out


def canonical_columns(frame: pd.DataFrame, features: dict[str, Any]) -> dict[str, np.ndarray]:
    """The profiled features of ``frame`` as the profile saw them.

    Numbers: float64, missing (and unreadable) as NaN. Categories: ``str``, bools as
    ``"true"/"false"``, missing as None. Conversion is ``prepare_frame``'s, the same as
    training's, so a value means the same thing here as in the profile.
    """
    import numpy as np

    from shared.ml.pipeline import prepare_frame

    out: dict[str, np.ndarray] = {}
    for name, feature in features.items():
        if name not in frame.columns:
            continue
        kind = str(feature.get("dtype") or "string")
        kind = kind if kind in (NUMBER, BOOL) else "string"
        values = prepare_frame(frame, [{"name": name, "dtype": kind}])[name].to_numpy()
        if kind == NUMBER:
            out[name] = values.astype(float)
        elif kind == BOOL:
            floats = values.astype(float)
            labels = np.where(floats == 1, "true", "false").astype(object)
            labels[np.isnan(floats)] = None
            out[name] = labels
        else:
            text = values.astype(object)
            text[text == ""] = None
            out[name] = text
    return out


class RowSample:
    """A uniform random sample of at most ``cap`` rows, fed chunk by chunk.

    Every row draws a random key; the sample is the ``cap`` rows with the smallest keys
    (bottom-k sampling), so memory is the sample plus one chunk whatever the input size.
    Columns keep their canonical types (see :func:`canonical_columns`).
    """

    def __init__(self, features: dict[str, Any], cap: int = MAX_SAMPLE_ROWS) -> None:
        import numpy as np

        self.features = features
        self.cap = cap
        self.rng = np.random.default_rng(SEED)
        self.keys = np.empty(0)
        self.columns: dict[str, np.ndarray] = {name: self._missing(name, 0) for name in features}
        self.present: set[str] = set()  # features some input actually carried
        self.seen = 0

    def _missing(self, name: str, n: int) -> np.ndarray:
        import numpy as np

        if str(self.features[name].get("dtype")) == NUMBER:
            return np.full(n, np.nan)
        return np.full(n, None, dtype=object)

    def add(self, columns: dict[str, np.ndarray], n_rows: int) -> None:
        import numpy as np

        if n_rows == 0:
            return
        self.present.update(columns)
        for name in self.features:
            incoming = columns.get(name)
            if incoming is None:
                incoming = self._missing(name, n_rows)
            self.columns[name] = np.concatenate([self.columns[name], incoming])
        self.keys = np.concatenate([self.keys, self.rng.random(n_rows)])
        self.seen += n_rows
        if self.keys.size > self.cap:
            keep = np.argpartition(self.keys, self.cap - 1)[: self.cap]
            self.keys = self.keys[keep]
            self.columns = {k: v[keep] for k, v in self.columns.items()}

    @property
    def n_rows(self) -> int:
        return int(self.keys.size)

    def carried(self) -> dict[str, np.ndarray]:
        """The columns of the features the input had (absent ones are "not in the data")."""
        return {k: v for k, v in self.columns.items() if k in self.present}
