"""What a batch scoring job reads: its targets, and each input file cut into chunks.

Plain functions over the scoring datasets (container ``scoring``): which (model, version,
dataset) a request means, and where a Parquet file's row groups or a CSV file's records
split into chunks of about ``chunk_rows`` rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shared.datasets.schemas import DatasetBlob
from shared.datasets.store import DatasetStore
from shared.errors import NotFound, ValidationFailed
from shared.names import check_alias, check_name
from shared.prediction.batch.blobs import (
    _reader,
)
from shared.prediction.batch.errors import NothingToScore
from shared.prediction.batch.schemas import (
    BatchScoreRequest,
)
from shared.resources import Containers

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from shared.registry.store import ModelRegistry


INPUT_CONTAINER = Containers.SCORING
MAX_TARGETS = 500


def _is_name(value: str) -> bool:
    try:
        check_name(value, "dataset")
    except ValidationFailed:
        return False
    return True


def scoring_targets(
    registry: ModelRegistry, inputs: DatasetStore, body: BatchScoreRequest
) -> list[dict[str, Any]]:
    """(model, version, dataset) per target of a request; 404 before anything is queued."""
    if body.alias is not None:
        check_alias(body.alias)
    if body.model is not None or body.dataset is not None:
        name = check_name(body.model or body.dataset or "", "model")
        dataset = check_name(body.dataset or name, "dataset")
        version = registry.resolve(name, version=body.version, alias=body.alias)
        locate(inputs, dataset)
        return [{"model": name, "version": version, "dataset": dataset}]
    # Every model that has a scoring dataset of its own name ("all unscored rooms").
    targets = []
    for name in scoring_datasets(inputs):
        try:
            version = registry.resolve(name, alias=body.alias)
        except NotFound:
            continue  # a scoring dataset without a model (or without that alias)
        targets.append({"model": name, "version": version, "dataset": name})
        if len(targets) > MAX_TARGETS:
            raise ValidationFailed(
                f"More than {MAX_TARGETS} models have scoring datasets; name the model."
            )
    if not targets:
        raise NothingToScore(
            "No scoring dataset is named after a registered model"
            + (f" with alias '{body.alias}'." if body.alias else ".")
        )
    return targets


def locate(inputs: DatasetStore, dataset: str) -> Any:
    """Where a scoring dataset's files are; 404 naming the container and folder."""
    try:
        return inputs.locate(dataset)
    except NotFound:
        raise NotFound(
            f"No scoring dataset '{dataset}' (container '{INPUT_CONTAINER}', folder '{dataset}/').",
            code="SCORING_DATASET_NOT_FOUND",
        ) from None


def scoring_datasets(inputs: DatasetStore) -> Iterator[str]:
    """The folders of container 'scoring' that are valid dataset names."""
    from azure.storage.blob import BlobPrefix

    for entry in inputs.container.walk_blobs(delimiter="/"):
        if isinstance(entry, BlobPrefix) and _is_name(entry.name[:-1]):
            yield entry.name[:-1]


def plan_parquet(
    container: ContainerClient, blob: DatasetBlob, chunk_rows: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and row-group ranges of ~``chunk_rows`` rows (a big row group is one chunk)."""
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(_reader(container, blob))
    names = parquet.schema_arrow.names
    pieces: list[dict[str, Any]] = []
    start, rows = 0, 0
    meta = parquet.metadata
    for index in range(meta.num_row_groups):
        rows += meta.row_group(index).num_rows
        if rows >= chunk_rows:
            pieces.append({"start": start, "end": index + 1, "rows": rows})
            start, rows = index + 1, 0
    if start < meta.num_row_groups and rows:
        pieces.append({"start": start, "end": meta.num_row_groups, "rows": rows})
    return names, pieces


def plan_csv(
    container: ContainerClient, blob: DatasetBlob, chunk_rows: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns (header) and byte ranges of ~``chunk_rows`` records, in one streaming pass."""
    from shared.prediction.batch.files import csv_chunks

    stream = _reader(container, blob)
    header_end, ranges = csv_chunks(stream.read, chunk_rows)
    head = container.download_blob(
        blob.path, offset=0, length=max(1, header_end), max_concurrency=1
    ).readall()
    names = next(csv.reader(io.StringIO(head.decode("utf-8-sig"))), [])
    pieces = [
        {"start": start, "end": end, "rows": rows, "header_end": header_end}
        for start, end, rows in ranges
    ]
    return names, pieces
