"""The batch scoring engine: record batches in, scored tables out, memory bounded.

Pure computation over file-like objects (no storage clients here, so the benchmark and
the unit tests run it on local files): :func:`score_parquet` and :func:`score_csv` read
their input in batches of :data:`BATCH_ROWS` rows, :func:`score_table` turns one batch
into an output table, and an :class:`OutputWriter` streams the tables into Parquet (and
CSV) row group by row group. Nothing ever holds more than a few batches, whatever the
input size.

Feature typing is the online one (``shared.prediction.inputs``; the feed and the outputs
are ``shared.prediction.runtime``'s, as online): numbers become floats
(missing: NaN), strings ``str`` (missing: ``""``), booleans 0/1 (missing: NaN). A row that
cannot be typed, or whose partition has no sub-model, is counted as failed with a reason
and left out of the output; it never fails the batch. Because CSV has no types, a text
column feeding a number feature is parsed per value ("3.5" is accepted, "lots" fails its
row), and one feeding a bool feature accepts the usual true/false/yes/no/1/0 spellings.

Output columns: the key columns of the input (default: every column that is not a
feature, e.g. room and timestamp ids), then ``prediction``; ``score`` for anomaly models
(``decision_function``: negative = outlier); for classifiers ``probability`` (of the
predicted class) or one ``proba_<class>`` column per class; and ``model_version``.

numpy and pyarrow are imported at module level: only workers import this module.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pyarrow as pa

from shared.prediction.batch.features import (
    take,
    type_features,
)
from shared.prediction.batch.files import (
    BATCH_ROWS,
    PREDICTION,
    OutputWriter,
    csv_frames,
    parquet_batches,
    prefetch,
)
from shared.prediction.runtime import Outputs, Servable

if TYPE_CHECKING:
    pass


MAX_REASONS = 20
SCORE, PROBABILITY = "score", "probability"
MODEL_VERSION = "model_version"
PROBA_PREFIX = "proba_"
OUTPUT_COLUMNS = frozenset({PREDICTION, SCORE, PROBABILITY, MODEL_VERSION})

Probabilities = Literal["predicted", "per_class"]


# --- inference -------------------------------------------------------------------------


class ServableVersion(Protocol):
    """What scoring needs from a model version (the registry, or a bare ONNX in a test)."""

    name: str
    version: int
    features: list[dict[str, str]]
    task: str | None
    partition_by: str | None

    def servable(self, partition: str | None) -> Servable | None:
        """The (sub-)model for a partition; None when the version has no such partition."""
        ...


@dataclass
class SingleVersion:
    """An unpartitioned version around one :class:`Servable`."""

    name: str
    version: int
    model: Servable
    partition_by: str | None = None

    @property
    def features(self) -> list[dict[str, str]]:
        return self.model.features

    @property
    def task(self) -> str | None:
        return self.model.task

    def servable(self, partition: str | None) -> Servable | None:
        return self.model


def partition_label(value: Any) -> str:
    """A partition value as the manifest's key: integral floats as integers ("3", not "3.0")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- one batch -> one output table ------------------------------------------------------


@dataclass
class BatchResult:
    table: pa.Table | None
    scored: int
    failed: int
    reasons: Counter[str]


def _column(values: list[np.ndarray]) -> np.ndarray:
    kinds = {v.dtype.kind for v in values}
    if len(kinds) > 1 and not kinds <= {"i", "u", "f"}:
        values = [v.astype(object) for v in values]
    return np.concatenate(values) if len(values) > 1 else values[0]


def _to_arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values.tolist())
    return pa.array(values)


def _groups(table: pa.Table, column: str, rows: np.ndarray) -> Iterator[tuple[Any, np.ndarray]]:
    """(partition value, positions) for the given rows, grouped by the partition column."""
    encoded = table.column(column).take(pa.array(rows)).combine_chunks().dictionary_encode()
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False))
    dictionary = encoded.dictionary.to_pylist()
    null = codes < 0
    if null.any():
        yield None, rows[null]
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(order)]
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        code = int(sorted_codes[start])
        if code >= 0:
            yield dictionary[code], rows[order[start:end]]


def score_table(
    table: pa.Table,
    model: ServableVersion,
    key_columns: Sequence[str],
    probabilities: Probabilities = "predicted",
    classes: Sequence[Any] | None = None,
) -> BatchResult:
    """Score one batch; failed rows are counted (with reasons) and left out.

    ``classes``: the ``proba_<class>`` columns to write in ``per_class`` mode, fixed for a
    whole job so every batch (and every partition) has the same columns.
    """
    typed = type_features(table, model.features)
    reasons = typed.reasons
    usable = np.flatnonzero(typed.valid)
    if model.partition_by:
        groups = list(_groups(table, model.partition_by, usable))
    else:
        groups = [(None, usable)]
    positions: list[np.ndarray] = []
    outputs: list[Outputs] = []
    for value, rows in groups:
        if not len(rows):
            continue
        if model.partition_by and value is None:
            reasons[f"no '{model.partition_by}' value"] += len(rows)
            continue
        sub = model.servable(partition_label(value) if model.partition_by else None)
        if sub is None:
            reasons[f"unknown partition '{partition_label(value)[:60]}'"] += len(rows)
            continue
        outputs.append(sub.run(take(typed.columns, rows), with_probabilities=True))
        positions.append(rows)
    scored = sum(len(p) for p in positions)
    failed = table.num_rows - scored
    if not scored:
        return BatchResult(None, 0, failed, reasons)
    where = np.concatenate(positions)
    order = np.argsort(where, kind="stable")  # back to the input's row order
    rows = pa.array(where[order])
    columns: dict[str, Any] = {k: table.column(k).take(rows) for k in key_columns}
    columns[PREDICTION] = _to_arrow(_column([o.predictions for o in outputs])[order])
    scores = [o.scores for o in outputs if o.scores is not None]
    if len(scores) == len(outputs):
        columns[SCORE] = pa.array(_column(scores)[order])
    if all(o.probabilities is not None for o in outputs):
        columns.update(_probabilities(outputs, order, probabilities, classes))
    columns[MODEL_VERSION] = pa.array(np.full(scored, model.version, dtype=np.int64))
    return BatchResult(pa.table(columns), scored, failed, reasons)


def _probabilities(
    outputs: list[Outputs],
    order: np.ndarray,
    mode: Probabilities,
    classes: Sequence[Any] | None,
) -> dict[str, pa.Array]:
    probas = [np.asarray(o.probabilities) for o in outputs]
    if mode == "predicted":
        return {PROBABILITY: pa.array(_column([p.max(axis=1) for p in probas])[order])}
    wanted = list(classes) if classes else list(outputs[0].classes or range(probas[0].shape[1]))
    columns = {}
    for c in wanted:
        parts = []
        for o, p in zip(outputs, probas, strict=True):
            labels = list(o.classes) if o.classes is not None else list(range(p.shape[1]))
            # A partition that never saw a class gives it probability 0.
            parts.append(p[:, labels.index(c)] if c in labels else np.zeros(len(p)))
        columns[f"{PROBA_PREFIX}{c}"] = pa.array(_column(parts)[order])
    return columns


@dataclass
class ScoreStats:
    rows_read: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, result: BatchResult, rows: int) -> None:
        self.rows_read += rows
        self.rows_scored += result.scored
        self.rows_failed += result.failed
        merge_reasons(self.reasons, result.reasons)


def merge_reasons(into: Counter[str], more: Counter[str] | dict[str, int]) -> Counter[str]:
    """Add counts; beyond :data:`MAX_REASONS` distinct reasons, new ones go to "other"."""
    for reason, count in more.items():
        if reason in into or len(into) < MAX_REASONS:
            into[reason] += count
        else:
            into["other reasons"] += count
    return into


def default_keys(columns: Sequence[str], model: ServableVersion) -> list[str]:
    """Every input column that is not a feature and not an output column's name."""
    features = {f["name"] for f in model.features}
    return [c for c in columns if c not in features and c not in OUTPUT_COLUMNS]


def score_batches(
    batches: Iterable[pa.Table | pa.RecordBatch],
    model: ServableVersion,
    writer: OutputWriter,
    key_columns: Sequence[str],
    probabilities: Probabilities = "predicted",
    classes: Sequence[Any] | None = None,
) -> ScoreStats:
    """Score every batch into the writer (the caller closes it)."""
    stats = ScoreStats()
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        result = score_table(table, model, key_columns, probabilities, classes)
        if result.table is not None:
            writer.write(result.table)
        stats.add(result, table.num_rows)
    return stats


def input_columns(
    available: Sequence[str], model: ServableVersion, keys: Sequence[str]
) -> list[str]:
    """The columns to read: features, keys and the partition column, in file order."""
    wanted = {f["name"] for f in model.features} | set(keys)
    if model.partition_by:
        wanted.add(model.partition_by)
    return [c for c in available if c in wanted]


def score_parquet(
    source: Any,
    model: ServableVersion,
    writer: OutputWriter,
    *,
    key_columns: Sequence[str] | None = None,
    row_groups: Sequence[int] | None = None,
    probabilities: Probabilities = "predicted",
    classes: Sequence[Any] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ScoreStats:
    """Score a Parquet file (or some of its row groups) into ``writer`` (left open)."""
    import pyarrow.parquet as pq

    names = pq.ParquetFile(source).schema_arrow.names
    keys = list(key_columns) if key_columns is not None else default_keys(names, model)
    columns = input_columns(names, model, keys)
    batches = prefetch(parquet_batches(source, columns, row_groups, batch_rows))
    return score_batches(batches, model, writer, keys, probabilities, classes)


def score_csv(
    stream: IO[bytes],
    dtypes: dict[str, str],
    model: ServableVersion,
    writer: OutputWriter,
    *,
    key_columns: Sequence[str] | None = None,
    probabilities: Probabilities = "predicted",
    classes: Sequence[Any] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ScoreStats:
    """Score CSV bytes (header first) into ``writer``; ``dtypes``: column -> dataset dtype."""
    keys = list(key_columns) if key_columns is not None else default_keys(list(dtypes), model)
    columns = input_columns(list(dtypes), model, keys)
    batches = prefetch(csv_frames(stream, dtypes, columns, batch_rows))
    return score_batches(batches, model, writer, keys, probabilities, classes)
