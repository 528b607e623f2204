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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.monitoring import partition_labels, version_info
from shared.monitoring.schemas import (
    DriftReport,
    DriftRequest,
    RecentDriftQuery,
    ThresholdsBody,
)
from shared.monitoring.statistics import (
    RowSample,
    Thresholds,
    canonical_columns,
    compare,
)
from shared.names import check_name
from shared.registry.files import find_file

if TYPE_CHECKING:
    import pandas as pd

    from shared.datasets.store import DatasetStore
    from shared.prediction.log import PredictionLog
    from shared.registry.loader import ModelLoader
    from shared.registry.schemas import StoredFile, VersionInfo
    from shared.registry.store import ModelRegistry

CHUNK_ROWS = 50_000
MAX_LOGGED_REQUESTS = 2_000


class NoTrainingProfile(Conflict):
    """The version has no training profile (uploaded models): nothing to compare with."""

    code, title = "NO_TRAINING_PROFILE", "No training profile"


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


def _thresholds(body: ThresholdsBody) -> Thresholds:
    return Thresholds(p_value=body.p_value_threshold, psi=body.psi_threshold)
