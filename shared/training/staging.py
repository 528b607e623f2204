"""Staging a partitioned spec's rows by unit, in bounded memory.

Two passes over the dataset, each one chunk (``CHUNK_ROWS``) at a time:

1. the partition column alone, to count the rows of every partition;
2. every column: the rows of each chunk go to their unit's staging blob
   ``{job}/{spec}/u{index}/in/{chunk}.parquet`` (one blob per unit and chunk, not per
   partition and chunk), at most two chunks' uploads in flight.

So the planner never holds more than about two chunks, and a unit reads only its own
rows (at most max(TRAINING_UNIT_ROWS, its largest partition)), whatever the number of
partitions or the dataset's size.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from shared.errors import ValidationFailed
from shared.training.plots import PLOT_DATA, plot_path
from shared.training.units import pack

CHUNK_ROWS = 100_000
# Aim for at least this many units per spec, so a job spreads over that many instances
# even when the whole dataset fits one row budget.
SPREAD_UNITS = 8
# A spec of more units than this ends on two smaller ones: half the row budget, then a
# quarter. Units go out in order, so the last ones taken are short and the instance that
# finishes first takes them, instead of waiting, idle, on the one still running a full
# unit (two workers, 1,000 rooms of 1,000 rows in 20 units of about 5 s: the last unit
# ran alone for 1.5 s).
TAIL_AFTER_UNITS = 16


def partition_key(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


def plain(value: Any) -> Any:
    """Partition values as JSON-friendly Python scalars."""
    item: Callable[[], Any] | None = getattr(value, "item", None)
    return item() if item else value


def unit_prefix(job_id: str, spec: str, index: int) -> str:
    return f"{job_id}/{spec}/u{index:06d}/"


def count_partitions(datasets: Any, dataset: str, column: str) -> tuple[dict[str, int], dict]:
    """Rows per partition key and each key's value (pass 1: one column read)."""
    counts: dict[str, int] = {}
    values: dict[str, Any] = {}
    for frame in datasets.iter_frames(dataset, chunksize=CHUNK_ROWS, columns=[column]):
        for value, n in frame[column].value_counts(sort=False, dropna=True).items():
            key = partition_key(value)
            counts[key] = counts.get(key, 0) + int(n)
            values[key] = value
    return counts, values


def plan_units(
    counts: dict[str, int], values: dict[str, Any], min_rows: int, row_budget: int
) -> tuple[list[list[str]], list[str]]:
    """(units of trainable partition keys, skipped keys), both in partition-value order."""
    ordered = sorted(values, key=lambda k: str(values[k]))
    trainable = [k for k in ordered if counts[k] >= min_rows]
    total = sum(counts[k] for k in trainable)
    budget = max(1, min(row_budget, math.ceil(total / SPREAD_UNITS)))
    skipped = [k for k in ordered if counts[k] < min_rows]
    sized = [(k, counts[k]) for k in trainable]
    units = pack(sized, budget)
    if len(units) > TAIL_AFTER_UNITS:
        units = pack(sized, budget, tail=(budget // 4, budget // 2))
    return units, skipped


def stage_units(
    datasets: Any,
    staging: Any,
    job_id: str,
    spec: Any,
    unit_of_value: dict[Any, int],
) -> None:
    """Pass 2: write every chunk's rows to their unit's blob (rows of no unit dropped)."""
    column = spec.partition_by
    in_flight: list[Future[Any]] = []
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="stage") as pool:
        for index, frame in enumerate(datasets.iter_frames(spec.dataset, chunksize=CHUNK_ROWS)):
            if column not in frame.columns:
                raise ValidationFailed(f"Column '{column}' is not in the dataset.")
            unit_index = frame[column].map(unit_of_value)
            current = []
            for unit, part in frame.groupby(unit_index, sort=False, dropna=True):
                buffer = io.BytesIO()
                part.to_parquet(buffer, index=False)
                name = f"{unit_prefix(job_id, spec.name, int(unit))}in/{index:06d}.parquet"
                current.append(
                    pool.submit(staging.upload_blob, name, buffer.getvalue(), overwrite=True)
                )
            # Bound memory: the previous chunk's uploads finish before the next is read.
            for future in in_flight:
                future.result()
            in_flight = current
            del frame, unit_index
        for future in in_flight:
            future.result()


def read_unit_frame(staging: Any, prefix: str) -> Any:
    """A unit's staged rows as one frame (its blobs read in parallel)."""
    import pandas as pd

    names = [b.name for b in staging.list_blobs(name_starts_with=prefix + "in/")]

    def read(name: str) -> Any:
        return pd.read_parquet(io.BytesIO(staging.download_blob(name).readall()))

    if not names:
        raise ValueError("no rows to train on")
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="unit-read") as pool:
        parts = list(pool.map(read, sorted(names)))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def trained_files(trained: Any) -> dict[str, bytes]:
    """The files a trained model stages (and the registry stores)."""
    summary = {
        "task": trained.task,
        "algorithm": trained.algorithm,
        "params": trained.params,
        "features": trained.features,
        "target": trained.target,
        "classes": trained.classes,
        "primary_metric": trained.primary_metric,
        "n_train": trained.n_train,
        "n_holdout": trained.n_holdout,
        "onnx_parity": trained.onnx_parity,
    }
    files = {
        "model.skops": trained.skops_bytes,
        "profile.json": json.dumps(trained.profile).encode(),
        "training.json": json.dumps(summary, default=str).encode(),
    }
    if trained.onnx_bytes:
        files["model.onnx"] = trained.onnx_bytes
    files.update({plot_path(name): data for name, data in (trained.plots or {}).items()})
    if trained.plot_data:
        files[PLOT_DATA] = json.dumps(trained.plot_data, allow_nan=False).encode()
    return files


def staged_plots(files: dict[str, bytes]) -> list[str]:
    """The staged plot files (``plots/<name>.png``), sorted."""
    return sorted(name for name in files if name.startswith("plots/") and name.endswith(".png"))


def unit_id_prefix(job_id: str, spec: str, unit_id: str) -> str:
    """The staging folder of a unit, from its id (``{spec}~{index}``)."""
    return unit_prefix(job_id, spec, int(unit_id.rsplit("~", 1)[1]))
