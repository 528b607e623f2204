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

import contextlib
import io
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.prediction.runtime import NUMBER, STRING, Columns, Outputs, Servable, kind

if TYPE_CHECKING:
    import pandas as pd

# Rows per queue message (one parallel unit of work); Parquet chunks are whole row groups.
CHUNK_ROWS = 250_000
# Rows scored at once: what bounds memory whatever the chunk, row group or file size
# (50k x 30 float features is 12 MB a copy; read-ahead, typing and onnxruntime's buffers
# make it ~200 MB at peak, measured, on top of the model).
BATCH_ROWS = 50_000
MAX_REASONS = 20
PARQUET_BUFFER = 1024 * 1024
PREDICTION, SCORE, PROBABILITY = "prediction", "score", "probability"
MODEL_VERSION = "model_version"
PROBA_PREFIX = "proba_"
OUTPUT_COLUMNS = frozenset({PREDICTION, SCORE, PROBABILITY, MODEL_VERSION})

Probabilities = Literal["predicted", "per_class"]

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


# --- typing one batch ------------------------------------------------------------------


@dataclass
class Typed:
    """One batch's features in the model's order, which rows are usable, and why not."""

    columns: Columns
    valid: np.ndarray
    reasons: Counter[str]


def _numbers(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    t = col.type
    present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(values, dtype=np.float64), np.zeros(len(col), dtype=bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        import pandas as pd  # lazy: only text columns need it

        text = pc.utf8_trim_whitespace(col.cast(pa.string()))
        raw = text.to_numpy(zero_copy_only=False)
        parsed = pd.to_numeric(pd.Series(raw, dtype=object), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        empty = np.asarray(pc.equal(text, "").fill_null(True).to_numpy(zero_copy_only=False))
        bad = present & ~empty & np.isnan(parsed)
        return parsed, bad
    # bool, timestamps, nested: online refuses them for a number feature, so does batch.
    return np.full(len(col), np.nan), present


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return np.asarray(
            pc.fill_null(col.cast(pa.string()), "").to_numpy(zero_copy_only=False), dtype=object
        )
    # As training prepares them (str of the value), so integer ids keep matching.
    return np.array(["" if v is None else str(v) for v in col.to_pylist()], dtype=object)


def _bools(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    t = col.type
    present = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_boolean(t):
        return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False)), np.zeros(
            len(col), bool
        )
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
        bad = present & ~np.isin(values, (0.0, 1.0))
        return np.where(bad, np.nan, values), bad
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(col.cast(pa.string())))
        raw = text.to_numpy(zero_copy_only=False)
        out = np.full(len(col), np.nan)
        is_true = np.isin(raw, list(_TRUE))
        is_false = np.isin(raw, list(_FALSE))
        out[is_true], out[is_false] = 1.0, 0.0
        empty = np.asarray(pc.equal(text, "").fill_null(True).to_numpy(zero_copy_only=False))
        return out, present & ~empty & ~is_true & ~is_false
    return np.full(len(col), np.nan), present


def type_features(table: pa.Table | pa.RecordBatch, features: Sequence[dict[str, str]]) -> Typed:
    """The features of one batch as :class:`Columns` (numpy arrays), with invalid rows.

    Raises ``KeyError`` when a feature column is absent (a dataset problem, not a row's).
    """
    n = table.num_rows
    names = [f["name"] for f in features]
    kinds = [kind(f.get("dtype", "number")) for f in features]
    valid = np.ones(n, dtype=bool)
    reasons: Counter[str] = Counter()
    values: list[Any] = []
    present = set(table.schema.names)
    missing = [name for name in names if name not in present]
    if missing:
        raise KeyError(f"missing feature column(s): {', '.join(missing)}")
    for name, k in zip(names, kinds, strict=True):
        col = table.column(name)
        if isinstance(col, pa.Array):
            col = pa.chunked_array([col], type=col.type)
        if k == STRING:
            values.append(_strings(col))
            continue
        converted, bad = _numbers(col) if k == NUMBER else _bools(col)
        if bad.any():
            expected = "a number" if k == NUMBER else "a boolean"
            reasons[f"feature '{name}' must be {expected}"] += int(np.count_nonzero(bad & valid))
            valid &= ~bad
        values.append(converted)
    return Typed(Columns(names, kinds, values, n, []), valid, reasons)


def typed_frame(frame: pd.DataFrame, features: Sequence[dict[str, str]]) -> Typed:
    """:func:`type_features` for a pandas chunk (a CSV chunk, a test's frame)."""
    return type_features(pa.Table.from_pandas(frame, preserve_index=False), features)


def take(cols: Columns, rows: np.ndarray) -> Columns:
    """The given rows (positions) of every column."""
    return Columns(cols.names, cols.kinds, [v[rows] for v in cols.values], len(rows), [])


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


# --- streaming output ------------------------------------------------------------------


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The table with the schema's columns, in order: missing ones null, types cast."""
    columns = []
    for f in schema:
        if f.name in table.schema.names:
            col = table.column(f.name)
            columns.append(col if col.type == f.type else col.cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


class OutputWriter:
    """Tables -> one Parquet (and optionally one CSV) stream, row group by row group.

    The first table fixes the schema; later tables are conformed to it (a partition whose
    labels came out int32 next to int64 is cast). Nothing is buffered beyond one table.
    """

    def __init__(self, parquet: IO[bytes] | None, csv: IO[bytes] | None = None) -> None:
        self.parquet_sink = parquet
        self.csv_sink = csv
        self.schema: pa.Schema | None = None
        self._parquet: Any = None
        self._csv: Any = None
        self.rows = 0

    def open(self, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq
        from pyarrow import csv

        self.schema = schema
        if self.parquet_sink is not None:
            self._parquet = pq.ParquetWriter(self.parquet_sink, schema, compression="snappy")
        if self.csv_sink is not None:
            self._csv = csv.CSVWriter(self.csv_sink, schema)

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self.schema is None:
            self.open(table.schema)
        assert self.schema is not None
        if table.schema != self.schema:
            table = conform(table, self.schema)
        if self._parquet is not None:
            self._parquet.write_table(table)
        if self._csv is not None:
            self._csv.write_table(table)
        self.rows += table.num_rows

    def close(self, empty_schema: pa.Schema | None = None) -> None:
        """Finish the streams; with no row written, an empty file of ``empty_schema``."""
        if self.schema is None:
            self.open(empty_schema or pa.schema([(PREDICTION, pa.null())]))
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


# --- reading inputs ----------------------------------------------------------------------


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead.

    Decoding (Parquet, CSV) then overlaps inference on another core; memory stays bounded
    by ``depth`` batches. Errors surface in the consumer; a consumer that stops early
    stops the producer.
    """
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((done, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            slots.put((done, exc))

    thread = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        thread.join(timeout=5)


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


def parquet_batches(
    source: Any,
    columns: Sequence[str] | None = None,
    row_groups: Sequence[int] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """Record batches of a Parquet file (path or file object), only the given row groups."""
    import pyarrow.parquet as pq

    # Buffered page reads: a row group is decoded batch by batch instead of whole (a 1M-row
    # row group costs ~100 MB instead of ~320 MB with 30 float columns).
    parquet = pq.ParquetFile(source, buffer_size=PARQUET_BUFFER, pre_buffer=False)
    groups = list(range(parquet.num_row_groups)) if row_groups is None else list(row_groups)
    if groups:
        yield from parquet.iter_batches(
            batch_size=batch_rows, row_groups=groups, columns=list(columns) if columns else None
        )


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


def csv_frames(
    stream: IO[bytes],
    dtypes: dict[str, str],
    columns: Sequence[str] | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.Table]:
    """CSV chunks typed as the dataset describes them (the datasets' one CSV reader)."""
    from shared.datasets.formats import read_csv_chunks

    for chunk in read_csv_chunks(stream, dtypes, columns, batch_rows):
        yield pa.Table.from_pandas(chunk, preserve_index=False)


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


# --- CSV chunk boundaries ----------------------------------------------------------------


def csv_chunks(
    read: Callable[[int], bytes], every: int = CHUNK_ROWS, block: int = 4 * 1024 * 1024
) -> tuple[int, list[tuple[int, int, int]]]:
    """Split a CSV into byte ranges of ``every`` records: (header end, [(start, end, rows)]).

    One streaming pass with quote parity (RFC 4180: a newline inside quotes is data, an
    escaped quote is doubled so parity still holds); ``read(n)`` returns the next bytes
    ("" at the end). Each range starts right after a record's newline, so a worker can
    parse it with the header prepended. Blank lines count as records here; pandas skips
    them, which only shifts a chunk's size.
    """
    offset = 0
    parity = 0
    header_end: int | None = None
    records = 0
    bounds: list[tuple[int, int]] = []  # (end offset, records so far)
    last = b""
    while True:
        data = read(block)
        if not data:
            break
        array = np.frombuffer(data, dtype=np.uint8)
        quotes = np.cumsum(array == 34, dtype=np.int64)  # '"'
        newline = np.flatnonzero(array == 10)  # '\n'
        inside = (parity + quotes[newline]) & 1
        ends = newline[inside == 0] + offset + 1
        parity = int((parity + (int(quotes[-1]) if len(quotes) else 0)) & 1)
        for end in ends.tolist():
            if header_end is None:
                header_end = end
                continue
            records += 1
            if records % every == 0:
                bounds.append((end, records))
        offset += len(data)
        last = data[-1:]
    if header_end is None:  # a header without newline, or an empty file: no data rows
        return offset, []
    if last and last != b"\n" and offset > (bounds[-1][0] if bounds else header_end):
        records += 1  # a last record without its newline
    chunks = []
    start, done = header_end, 0
    for end, count in bounds:
        chunks.append((start, end, count - done))
        start, done = end, count
    if offset > start:
        chunks.append((start, offset, records - done))
    return header_end, chunks


class RangeReader(io.RawIOBase):
    """``header`` followed by ``read_range(start, length)`` pieces of [start, end)."""

    def __init__(
        self, header: bytes, read_range: Callable[[int, int], bytes], start: int, end: int
    ) -> None:
        super().__init__()
        self._header = header
        self._read_range = read_range
        self._pos = start
        self._end = end

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._header:
            n = min(len(view), len(self._header))
            view[:n] = self._header[:n]
            self._header = self._header[n:]
            return n
        want = min(len(view), self._end - self._pos)
        if want <= 0:
            return 0
        data = self._read_range(self._pos, want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


# --- fan-in ------------------------------------------------------------------------------


def unified_schema(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for several parts: union of columns, types widened (int -> float, ...)."""
    return pa.unify_schemas(
        [s.remove_metadata() for s in schemas], promote_options="permissive"
    ).remove_metadata()


def concat_parquet(sources: Sequence[Any], writer: OutputWriter) -> int:
    """Copy Parquet parts into ``writer`` row group by row group (bounded memory)."""
    import pyarrow.parquet as pq

    files = [pq.ParquetFile(s) for s in sources]
    if not files:
        return 0
    schema = unified_schema([f.schema_arrow for f in files])
    writer.open(schema)
    rows = 0
    for parquet in files:
        for index in range(parquet.num_row_groups):
            table = parquet.read_row_group(index)
            writer.write(conform(table.replace_schema_metadata(None), schema))
            rows += table.num_rows
    return rows
