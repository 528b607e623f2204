"""Bounds on an uploaded dataset's shape and decoded size, checked before it is parsed.

The byte limit of an upload (MAX_DATASET_BYTES) says nothing about what the bytes become:
a few MB of CSV can declare a million columns or one 150 MB column name, and a few KB of
Parquet can declare 1e8 rows or decode to gigabytes (dictionary + RLE, zstd). So:

* CSV: the header is parsed alone (column count, name length), and physical lines are
  measured with numpy in fixed blocks before pandas sees the file (row size, row count).
* Parquet: the footer is read first (row and column counts, names, declared uncompressed
  sizes and bytes per row per row group); the data is then decoded in small batches with
  a running total, because a footer can lie and dictionary pages expand when decoded.

Shape violations are 422 (the file is not a usable table), size ones 413.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from shared.errors import PayloadTooLarge, ValidationFailed

_BLOCK = 8 * 1024 * 1024  # bytes scanned per numpy pass over a CSV
_BATCH_ROWS = 4096  # rows decoded per Parquet batch: one batch bounds the memory peak


@dataclass(frozen=True)
class DatasetLimits:
    max_columns: int = 2000
    max_column_name_chars: int = 256
    max_row_bytes: int = 1024 * 1024
    max_decompressed_bytes: int = 400 * 1024 * 1024
    max_rows: int = 50_000_000

    @classmethod
    def from_settings(cls, settings: Any) -> DatasetLimits:
        return cls(
            max_columns=settings.dataset_max_columns,
            max_column_name_chars=settings.dataset_max_column_name_chars,
            max_row_bytes=settings.dataset_max_row_bytes,
            max_decompressed_bytes=settings.dataset_max_decompressed_bytes,
            max_rows=settings.dataset_max_rows,
        )


def _too_wide(n: int, limits: DatasetLimits) -> ValidationFailed:
    return ValidationFailed(
        f"The dataset has {n} columns; at most {limits.max_columns} are accepted.",
        code="DATASET_TOO_WIDE",
    )


def _check_names(names: list[str], limits: DatasetLimits) -> None:
    if len(names) > limits.max_columns:
        raise _too_wide(len(names), limits)
    longest = max((len(n) for n in names), default=0)
    if longest > limits.max_column_name_chars:
        raise ValidationFailed(
            f"A column name has {longest} characters; at most"
            f" {limits.max_column_name_chars} are accepted.",
            code="DATASET_COLUMN_NAME_TOO_LONG",
        )


def _row_too_large(size: int, limits: DatasetLimits) -> ValidationFailed:
    return ValidationFailed(
        f"A row takes {size} bytes; at most {limits.max_row_bytes} are accepted.",
        code="DATASET_ROW_TOO_LARGE",
    )


def _too_many_rows(rows: int, limits: DatasetLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The dataset has {rows} rows; at most {limits.max_rows} are accepted.",
        code="DATASET_TOO_LARGE",
    )


def _too_big(size: int, limits: DatasetLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The dataset decodes to more than {limits.max_decompressed_bytes} bytes"
        f" (at least {size}).",
        code="DATASET_TOO_LARGE",
    )


def check_csv(data: bytes, limits: DatasetLimits) -> None:
    """Row size and count by physical lines, then the header's columns."""
    import numpy as np

    if len(data) > limits.max_decompressed_bytes:  # CSV is read as it is (no compression)
        raise _too_big(len(data), limits)
    view = np.frombuffer(data, dtype=np.uint8)
    previous = -1  # offset of the last newline seen
    lines = 0
    first_newline = -1
    for start in range(0, len(view), _BLOCK):
        found = np.flatnonzero(view[start : start + _BLOCK] == 10) + start
        if found.size:
            if first_newline < 0:
                first_newline = int(found[0])
            gaps = np.diff(found, prepend=previous) - 1
            widest = int(gaps.max())
            if widest > limits.max_row_bytes:
                raise _row_too_large(widest, limits)
            previous = int(found[-1])
            lines += int(found.size)
        if start + _BLOCK - previous - 1 > limits.max_row_bytes and start + _BLOCK < len(view):
            raise _row_too_large(start + _BLOCK - previous - 1, limits)
    tail = len(view) - previous - 1
    if tail > limits.max_row_bytes:
        raise _row_too_large(tail, limits)
    rows = lines + (1 if tail > 0 else 0) - 1  # less the header
    if rows > limits.max_rows:
        raise _too_many_rows(rows, limits)
    header = data[: first_newline if first_newline >= 0 else len(data)]
    try:
        names = next(csv.reader(io.StringIO(header.decode("utf-8").rstrip("\r"))), [])
    except UnicodeDecodeError:
        return  # the profiler refuses non-UTF-8 text with its own message
    _check_names(names, limits)


def check_parquet_footer(parquet: Any, limits: DatasetLimits) -> None:
    """Counts and declared sizes from a ``pyarrow.parquet.ParquetFile``'s metadata."""
    meta = parquet.metadata
    if meta.num_rows > limits.max_rows:
        raise _too_many_rows(meta.num_rows, limits)
    if meta.num_columns > limits.max_columns:
        raise _too_wide(meta.num_columns, limits)
    _check_names([str(n) for n in parquet.schema_arrow.names], limits)
    total = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        size = max(int(group.total_byte_size), 0)
        total += size
        if total > limits.max_decompressed_bytes:
            raise _too_big(total, limits)
        if group.num_rows and size // group.num_rows > limits.max_row_bytes:
            raise _row_too_large(size // group.num_rows, limits)


def decode_parquet_bounded(parquet: Any, limits: DatasetLimits) -> None:
    """Decode every row in small batches, refusing once the decoded total passes the limit
    (the footer's sizes are the writer's word; this is what reading really costs)."""
    total = 0
    for batch in parquet.iter_batches(batch_size=_BATCH_ROWS):
        size = int(batch.nbytes)
        total += size
        if batch.num_rows and size // batch.num_rows > limits.max_row_bytes:
            raise _row_too_large(size // batch.num_rows, limits)
        if total > limits.max_decompressed_bytes:
            raise _too_big(total, limits)
