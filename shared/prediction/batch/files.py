"""Batch files: reading inputs in bounded batches, streaming outputs, CSV chunk ranges, fan-in.

Pure I/O over file-like objects (no storage clients): Parquet and CSV in, Parquet (and
CSV) out, row group by row group, so memory stays bounded whatever the file size.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    pass

# Rows per queue message (one parallel unit of work); Parquet chunks are whole row groups.
CHUNK_ROWS = 250_000
# Rows scored at once: what bounds memory whatever the chunk, row group or file size
# (50k x 30 float features is 12 MB a copy; read-ahead, typing and onnxruntime's buffers
# make it ~200 MB at peak, measured, on top of the model).
BATCH_ROWS = 50_000
PARQUET_BUFFER = 1024 * 1024
PREDICTION = "prediction"


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
