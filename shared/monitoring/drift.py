"""Drift: new data (records, a dataset, logged predictions) against a version's training profile.

The profile (``shared.ml.profile``) keeps per-feature summaries, not training rows, so
every test here compares a sample with a *summary* of the training data.

Statistical choices, and why:

* **Numeric features: Kolmogorov-Smirnov.** The training CDF is rebuilt from the 21
  stored quantiles (0, 5%, ..., 100%), piecewise linear between them, 0 below the
  training minimum and 1 above the maximum. The new values are tested against it with
  ``scipy.stats.kstest(values, cdf)``: a one-sample KS test against the reconstructed
  CDF is what "two-sample KS against the profile" can mean without stored training rows.
  Details:

  - The reference is itself an estimate from ``m`` training rows, so the p-value uses the
    two-sample calibration ``n_eff = n*m/(n+m)`` (as ``scipy.stats.ks_2samp``'s asymptotic
    mode does) instead of ``n``. Otherwise a small training set's own sampling noise
    would read as drift as soon as the new sample is large.
  - Integer-valued features (hours, counts) have a step CDF that 21 quantiles cannot
    draw: the linear reconstruction misses each step by up to half of it, so their KS
    p-values run small even without drift. The PSI gate below (exact training bins) is
    what keeps them from being flagged; read their p-values with that in mind.
  - ``kstest`` assumes a continuous CDF. Where tied quantiles make the reconstructed CDF
    jump (integer or heavily repeated values), the same statistic
    ``sup |F_new - F_train|`` is computed with the CDF's left limits at the jumps, which
    ``kstest`` would get wrong (it would report D close to 1 for identical constants).

* **Numeric PSI** on the profile's histogram (edges = the deduplicated training
  quantiles, so about 5% of training rows per bin); new values outside the training
  range are clipped into the end bins, and half a count is added to every bin on both
  sides (the "small epsilon": empty bins stay finite, and it fades as samples grow).
* **Categorical features: chi-square** (``scipy.stats.chisquare``) of observed category
  counts against ``n`` times the training frequencies, unseen categories pooled into
  ``__other__``. Training frequencies get the same half-count smoothing, so a category
  never seen in training has a small but non-zero expectation; cells expected below 5
  are pooled into one (the chi-square approximation needs it). Like KS, the statistic is
  scaled by ``m/(n+m)`` (two-sample calibration) before its p-value is read. PSI is
  computed over the (unpooled) categories.
* **The verdict:** a feature drifts when ``p < p_value_threshold`` **and**
  ``psi >= psi_threshold`` (default 0.2, the usual "moderate shift" line; send 0 for the
  p-value alone). The p-value alone flags trivial differences on big samples, and the
  quantile reconstruction is itself approximate (by up to a few percent of CDF in the
  tails), which a sample of 100,000 rows would "detect". PSI alone is noisy on small
  samples (about ``(bins-1)(1/n+1/m)`` under no drift), which the p-value guards.
* Features with fewer than 20 non-missing values are not tested (``drift: null`` and a
  ``reason``).
* Datasets are read in chunks; at most 100,000 rows are kept, a uniform random sample
  (the rows with the smallest of one random key per row, seeded, so the same data gives
  the same answer). Memory stays bounded by the sample and one chunk.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.monitoring import partition_labels, version_info
from shared.names import check_name
from shared.registry.store import find_file

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shared.datasets.store import DatasetStore
    from shared.prediction.log import PredictionLog
    from shared.registry.loader import ModelLoader
    from shared.registry.schemas import StoredFile, VersionInfo
    from shared.registry.store import ModelRegistry

MIN_VALUES = 20
MAX_SAMPLE_ROWS = 100_000
CHUNK_ROWS = 50_000
MAX_LOGGED_REQUESTS = 2_000
PSEUDO_COUNT = 0.5
MIN_EXPECTED = 5.0
OTHER = "__other__"
NUMBER, BOOL = "number", "bool"
SEED = 20240601


class NoTrainingProfile(Conflict):
    """The version has no training profile (uploaded models): nothing to compare with."""

    code, title = "NO_TRAINING_PROFILE", "No training profile"


# --- request and response bodies ---------------------------------------------------------


class _Thresholds(BaseModel):
    p_value_threshold: float = Field(
        default=0.05, gt=0, lt=1, description="A feature drifts when its p-value is below this"
    )
    psi_threshold: float = Field(
        default=0.2,
        ge=0,
        le=100,
        description="... and its PSI at least this (0: the p-value alone decides).",
    )


class DriftRequest(_Thresholds):
    model_config = ConfigDict(extra="forbid")

    records: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, description="Rows to compare, one object per row."
    )
    dataset: str | None = Field(default=None, description="A dataset name (CSV/Parquet in Blob).")
    version: int | None = Field(default=None, ge=1, description="Default: champion, else latest.")
    partition: str | int | None = Field(
        default=None, description="Partitioned models: compare with this partition's profile."
    )

    @model_validator(mode="after")
    def _one_source(self) -> DriftRequest:
        if (self.records is None) == (self.dataset is None):
            raise ValueError("send exactly one of 'records' or 'dataset'")
        return self


class RecentDriftQuery(_Thresholds):
    hours: float = Field(default=24, gt=0, le=24 * 90, description="The window, in hours.")
    version: int | None = Field(default=None, ge=1)
    partition: str | None = Field(default=None, max_length=200)


class FeatureDrift(BaseModel):
    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float | None = Field(
        description="KS: the distance D. chi2: X^2 scaled by m/(n+m) (two-sample calibration)."
    )
    p_value: float | None
    psi: float | None
    drift: bool | None = Field(description="null: not tested (see reason).")
    n: int = Field(description="Non-missing values compared.")
    missing: int = Field(description="Missing (or unreadable) values in the new data.")
    reason: str | None = None


class DriftReport(BaseModel):
    model: str
    version: int
    partition: str | None
    source: Literal["records", "dataset", "predictions"]
    n_rows: int = Field(description="Rows compared (after sampling).")
    rows_seen: int = Field(description="Rows read (of the partition, when one is chosen).")
    sampled: bool
    drift_detected: bool
    drifted_features: list[str]
    features: list[FeatureDrift]
    p_value_threshold: float
    psi_threshold: float
    since: datetime | None = Field(default=None, description="Logged predictions: window start.")


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


# --- the reference: which profile a request compares with ---------------------------------


@dataclass(frozen=True)
class Reference:
    model: str
    version: int
    partition: str | None
    partition_by: str | None
    profile: dict[str, Any]


def _parse_profile(data: bytes, where: str) -> dict[str, Any]:
    try:
        profile = json.loads(data)
    except ValueError:
        profile = None
    features = profile.get("features") if isinstance(profile, dict) else None
    if not isinstance(features, dict) or not all(isinstance(f, dict) for f in features.values()):
        raise NoTrainingProfile(f"{where} is not a training profile; drift cannot be measured.")
    return profile


def _stored(
    info: VersionInfo, relative: str, manifest: dict[str, Any] | None = None
) -> StoredFile | None:
    return find_file(info, relative, manifest)


class DriftMonitor:
    """Finds the profile a request compares with, reads the new data, runs the tests."""

    def __init__(
        self,
        registry: ModelRegistry,
        loader: ModelLoader,
        datasets: Callable[[], DatasetStore] | None = None,
        prediction_log: Callable[[], PredictionLog] | None = None,
    ) -> None:
        self.registry = registry
        self.loader = loader
        self._datasets = datasets
        self._log = prediction_log

    def reference(self, name: str, version: int | None, partition: str | int | None) -> Reference:
        """The training profile of the version (of its partition, for partitioned models)."""
        check_name(name, "model")
        info = version_info(self.registry, name, version)  # 404 model / version
        resolved = info.version
        partition_by = None
        if info.format == "partitioned":
            model_file = next(f for f in info.files if f.role == "model")
            manifest = json.loads(self.loader.read_verified(info, model_file))
            partition_by = manifest.get("partition_by")
            if partition is None:
                raise ValidationFailed(
                    f"{name} has one model per '{partition_by}': send 'partition'.",
                    [{"loc": ["partition"], "msg": "required for this model", "type": "missing"}],
                )
            partition = str(partition)
            entry = manifest.get("partitions", {}).get(partition)
            if entry is None:
                raise NotFound(
                    f"{name} version {resolved} has no partition '{partition[:100]}'.",
                    code="PARTITION_NOT_FOUND",
                )
            relative = entry.get("profile")
            stored = _stored(info, relative, manifest) if relative else None
        else:
            partition = None  # a partition means nothing to an unpartitioned model
            stored = _stored(info, "artifacts/profile.json")
        if stored is None:
            raise NoTrainingProfile(
                f"{name} version {resolved} has no training profile (only models trained"
                " here have one); drift cannot be measured."
            )
        profile = _parse_profile(self.loader.read_verified(info, stored), stored.path)
        return Reference(name, resolved, partition, partition_by, profile)

    # -- the three sources --

    def on_records(self, name: str, body: DriftRequest) -> DriftReport:
        import pandas as pd

        ref = self.reference(name, body.version, body.partition)
        sample = RowSample(ref.profile["features"])
        frame = pd.DataFrame.from_records(body.records or [])
        self._feed(sample, ref, frame)
        return self._report(ref, sample, "records", _thresholds(body))

    def on_dataset(self, name: str, body: DriftRequest) -> DriftReport:
        ref = self.reference(name, body.version, body.partition)
        dataset = str(body.dataset)
        assert self._datasets is not None
        store = self._datasets()
        available = {c.name for c in store.get(dataset).columns}  # 404 before any read
        wanted = [f for f in ref.profile["features"] if f in available]
        if not wanted:
            raise ValidationFailed(
                f"Dataset '{dataset}' has none of the model's features"
                f" ({', '.join(list(ref.profile['features'])[:10])})."
            )
        if ref.partition_by and ref.partition_by in available:
            wanted.append(ref.partition_by)
        sample = RowSample(ref.profile["features"])
        for chunk in store.iter_frames(dataset, columns=wanted, chunksize=CHUNK_ROWS):
            self._feed(sample, ref, chunk)
        return self._report(ref, sample, "dataset", _thresholds(body))

    def on_recent(self, name: str, query: RecentDriftQuery) -> DriftReport:
        import pandas as pd

        from shared.tables import utcnow

        ref = self.reference(name, query.version, query.partition)
        since = utcnow() - timedelta(hours=query.hours)
        assert self._log is not None
        # Every logged request of the model counts, whichever version answered it: the
        # question is whether today's inputs look like this version's training data.
        logged = self._log().recent(name, since, limit=MAX_LOGGED_REQUESTS)
        if ref.partition is not None:
            logged = [p for p in logged if p.partition == ref.partition]
        batches = [p.records for p in logged if p.records]
        if not batches:
            raise NotFound(
                f"No logged predictions of {name}"
                + (f" partition '{ref.partition}'" if ref.partition else "")
                + f" in the last {query.hours:g} hours (only a sample of requests is logged).",
                code="NO_LOGGED_PREDICTIONS",
            )
        sample = RowSample(ref.profile["features"])
        pending: list[dict[str, Any]] = []
        for records in batches:
            pending.extend(r for r in records if isinstance(r, dict))
            if len(pending) >= CHUNK_ROWS:
                self._feed(sample, ref, pd.DataFrame.from_records(pending))
                pending = []
        if pending:
            self._feed(sample, ref, pd.DataFrame.from_records(pending))
        report = self._report(ref, sample, "predictions", _thresholds(query))
        report.since = since
        return report

    # -- internals --

    def _feed(self, sample: RowSample, ref: Reference, frame: pd.DataFrame) -> None:
        if ref.partition is not None and ref.partition_by in frame.columns:
            # Rows labelled with another partition are not this partition's data; rows
            # without the column are taken as the caller sent them (for this partition).
            labels = partition_labels(frame[ref.partition_by], {ref.partition})
            frame = frame[labels == ref.partition]
        sample.add(canonical_columns(frame, ref.profile["features"]), len(frame))

    def _report(self, ref: Reference, sample: RowSample, source: str, t: Thresholds) -> DriftReport:
        if sample.n_rows == 0:
            raise ValidationFailed(
                "No rows to compare"
                + (f" for partition '{ref.partition}'." if ref.partition else ".")
            )
        results = compare(ref.profile, sample.carried(), t)
        drifted = [f.name for f in results if f.drift]
        return DriftReport(
            model=ref.model,
            version=ref.version,
            partition=ref.partition,
            source=source,  # type: ignore[arg-type]
            n_rows=sample.n_rows,
            rows_seen=sample.seen,
            sampled=sample.seen > sample.n_rows,
            drift_detected=bool(drifted),
            drifted_features=drifted,
            features=results,
            p_value_threshold=t.p_value,
            psi_threshold=t.psi,
        )


def _thresholds(body: _Thresholds) -> Thresholds:
    return Thresholds(p_value=body.p_value_threshold, psi=body.psi_threshold)
