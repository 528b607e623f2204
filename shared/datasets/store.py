"""The DatasetStore: datasets in Blob (the truth), metadata cached in Table Storage.

See the package docstring for what a dataset is and how its metadata is computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from pydantic import ValidationError

from shared.datasets.blobs import (
    READ_BLOCK,
    BlobRangeReader,
    HashingReader,
    bare_etag,
    quoted_etag,
)
from shared.datasets.dtypes import merge_profiles
from shared.datasets.formats import (
    CONTENT_TYPES,
    DEFAULT_CHUNK_ROWS,
    combined_sha256,
    fingerprint,
    format_of_path,
    profile_csv,
    profile_parquet,
    read_csv_chunks,
    unreadable,
    upload_format,
)
from shared.datasets.limits import DatasetLimits, check_csv
from shared.datasets.schemas import (
    DatasetBlob,
    DatasetLocation,
    DatasetUnreadable,
    DatasetView,
    Dtype,
    Profile,
)
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.names import check_name
from shared.observability import get_logger
from shared.storage_deadline import map_in_threads
from shared.tables import decode_continuation, encode_continuation, quote

if TYPE_CHECKING:
    import pandas as pd
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

PARTITION = "datasets"
# A Table string property holds 64 KiB of UTF-16 and an entity 1 MiB: wide schemas and
# many-file drops are split over several properties, and not cached beyond that.
META_PART_CHARS = 30_000
META_MAX_PARTS = 15
READ_ATTEMPTS = 3

log = get_logger("datasets")


@dataclass
class _FileSummary:
    sha256: str
    rows: int
    profile: Profile
    error: str | None = None


class DatasetStore:
    """Datasets in Blob (the truth) with their metadata cached in Table Storage."""

    def __init__(
        self,
        container: ContainerClient,
        table: TableClient,
        *,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        limits: DatasetLimits | None = None,
    ) -> None:
        self.container = container
        self.table = table
        self.chunk_rows = chunk_rows
        self.limits = limits or DatasetLimits()

    # -- writes --

    def put(
        self,
        name: str,
        data: bytes,
        *,
        media_type: str | None,
        filename: str | None = None,
    ) -> tuple[DatasetView, bool]:
        """Store an upload as ``{name}/data.csv|parquet``; (metadata, created)."""
        from azure.storage.blob import ContentSettings

        check_name(name, "dataset")
        fmt = upload_format(data, media_type=media_type, filename=filename)
        if fmt == "csv":
            check_csv(data, self.limits)  # shape and size before pandas parses anything
            profile, rows = profile_csv(io.BytesIO(data), self.chunk_rows)
        else:
            profile, rows = profile_parquet(io.BytesIO(data), verify=True, limits=self.limits)
        columns = merge_profiles([profile])
        digest = hashlib.sha256(data).hexdigest()
        before = list(self.container.list_blobs(name_starts_with=f"{name}/"))
        path = f"{name}/data.{fmt}"
        written = self.container.get_blob_client(path).upload_blob(
            data,
            overwrite=True,
            metadata={"sha256": digest},
            content_settings=ContentSettings(content_type=CONTENT_TYPES[fmt]),
        )
        # Only after the new file is safely written; each deletion is pinned to the version
        # listed before the upload, so a file a concurrent writer just put there survives.
        for old in before:
            if old.name != path:
                with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
                    self.container.delete_blob(
                        old.name,
                        etag=quoted_etag(old.etag),
                        match_condition=MatchConditions.IfNotModified,
                    )
        blob = DatasetBlob(
            path=path,
            format=fmt,
            size=len(data),
            etag=bare_etag(written["etag"]),
            last_modified=written["last_modified"],
            sha256=digest,
        )
        view = DatasetView(
            name=name,
            format=fmt,
            size_bytes=len(data),
            sha256=digest,
            columns=columns,
            row_count=rows,
            uploaded_at=blob.last_modified,
            files=[path],
        )
        self._save(name, fingerprint([blob]), view)
        created = not any(format_of_path(b.name) and b.size for b in before)
        return view, created

    def append(self, name: str, frame: pd.DataFrame) -> tuple[DatasetView, str, bool]:
        """Add ``frame`` (already in the dataset's columns and dtypes) as a new immutable
        Parquet part named by its content hash; (metadata, part path, already there)."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        blobs, view = self._resolve(name)  # 404 for an unknown dataset
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
        data = sink.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        path = f"{name}/part-{digest[:32]}.parquet"
        if any(b.path == path for b in blobs):
            return view, path, True
        try:
            written = self.container.get_blob_client(path).upload_blob(
                data,
                overwrite=False,
                metadata={"sha256": digest},
                content_settings=ContentSettings(content_type=CONTENT_TYPES["parquet"]),
            )
        except ResourceExistsError:  # the same batch, concurrently
            return self.get(name), path, True
        profile, rows = profile_parquet(io.BytesIO(data))
        earlier = {c.name: (c.dtype, False) for c in view.columns}
        part = DatasetBlob(
            path=path,
            format="parquet",
            size=len(data),
            etag=bare_etag(written["etag"]),
            last_modified=written["last_modified"],
            sha256=digest,
        )
        every = sorted([*blobs, part], key=lambda b: b.path)
        if view.error or any(b.sha256 is None for b in every):
            # A file without a recorded digest (dropped by ADF): compute it all once.
            return self._view(name, every, None), path, False
        # The metadata grows by the part's footer: earlier files are not read again.
        updated = view.model_copy(
            update={
                "format": _format_of(every),
                "size_bytes": view.size_bytes + len(data),
                "sha256": combined_sha256([b.sha256 for b in every if b.sha256]),
                "columns": merge_profiles([earlier, profile]) if view.columns else view.columns,
                "row_count": view.row_count + rows,
                "uploaded_at": max(view.uploaded_at, part.last_modified),
                "files": sorted([*view.files, path]),
            }
        )
        self._save(name, fingerprint(every), updated)
        return updated, path, False

    def delete(self, name: str) -> None:
        """Delete every blob under ``{name}/`` and the cached row; 404 when nothing is there."""
        check_name(name, "dataset")
        blobs = list(self.container.list_blobs(name_starts_with=f"{name}/"))
        for blob in blobs:
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(blob.name)
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(PARTITION, name)
        if not blobs:
            raise NotFound(f"No dataset named '{name}'.", code="DATASET_NOT_FOUND")

    # -- reads --

    def locate(self, name: str) -> DatasetLocation:
        """The dataset's data files (paths, formats, ETags) without computing metadata."""
        check_name(name, "dataset")
        blobs = self._blobs(name)
        if not blobs:
            raise NotFound(f"No dataset named '{name}'.", code="DATASET_NOT_FOUND")
        return DatasetLocation(name=name, format=_format_of(blobs), files=tuple(blobs))

    def get(self, name: str) -> DatasetView:
        """The dataset's metadata, recomputed when its blobs changed since it was cached."""
        return self._resolve(name)[1]

    def list_datasets(
        self, limit: int, continuation: str | None
    ) -> tuple[list[DatasetView], str | None]:
        """One page of datasets (folders of the container), and the token of the next page.

        Folders whose name is not a valid dataset name, or that hold no CSV/Parquet file,
        are skipped, so a page may hold fewer than ``limit`` items before the last one.
        """
        from azure.storage.blob import BlobPrefix

        marker = (decode_continuation(continuation) or {}).get("marker")
        pager = self.container.walk_blobs(delimiter="/", results_per_page=limit).by_page(
            continuation_token=marker
        )
        try:
            entries = list(next(pager, []))
        except HttpResponseError as exc:
            if exc.status_code and exc.status_code < 500:
                raise ValidationFailed("The continuation token is not valid.") from None
            raise
        names = [
            e.name[:-1] for e in entries if isinstance(e, BlobPrefix) and _valid_name(e.name[:-1])
        ]
        rows = self._rows(names)

        def view(name: str) -> DatasetView | None:
            try:
                return self._resolve_with_row(name, rows.get(name))[1]
            except NotFound:  # a folder of markers only: not a dataset
                return None

        # One listing per folder: overlapped, so a page of 200 is not 200 round trips long.
        views = [v for v in map_in_threads(view, names) if v is not None]
        token = pager.continuation_token
        return views, encode_continuation({"marker": token}) if token else None

    def iter_frames(
        self,
        name: str,
        columns: Sequence[str] | None = None,
        chunksize: int = DEFAULT_CHUNK_ROWS,
    ) -> Iterator[pd.DataFrame]:
        """The dataset as DataFrames of at most ``chunksize`` rows, file after file.

        Checks run now (404, unknown columns, unreadable dataset); data is read lazily,
        through bounded range reads pinned to the described blob versions (409
        ``DATASET_CHANGED`` if a file is replaced meanwhile). CSV columns are given the
        described dtypes (``bool`` as pandas' nullable ``boolean``; ``datetime`` parsed
        from ISO 8601 as UTC), so every chunk has the same dtypes. Parquet row groups are
        read batch by batch, only the requested columns.
        """
        if chunksize < 1:
            raise ValidationFailed("chunksize must be at least 1.")
        blobs, view = self._resolve(name)
        if view.error:
            raise DatasetUnreadable(f"Dataset '{name}' cannot be read: {view.error}")
        known = {c.name for c in view.columns}
        wanted = list(columns) if columns is not None else None
        unknown = [c for c in wanted or [] if c not in known]
        if unknown:
            raise ValidationFailed(f"Dataset '{name}' has no column(s): {', '.join(unknown)}.")
        dtypes = {c.name: c.dtype for c in view.columns if wanted is None or c.name in wanted}
        return self._frames(blobs, wanted, dtypes, chunksize)

    # -- internals --

    def _blobs(self, name: str) -> list[DatasetBlob]:
        found = []
        for b in self.container.list_blobs(name_starts_with=f"{name}/", include=["metadata"]):
            fmt = format_of_path(b.name)
            if fmt is None or not b.size:
                continue  # markers (_SUCCESS), folders, empty part files
            sha = (b.metadata or {}).get("sha256")
            found.append(
                DatasetBlob(
                    path=b.name,
                    format=fmt,
                    size=b.size,
                    etag=bare_etag(b.etag),
                    last_modified=b.last_modified,
                    sha256=sha if sha and len(sha) == 64 else None,
                )
            )
        return sorted(found, key=lambda b: b.path)

    def _resolve(self, name: str) -> tuple[list[DatasetBlob], DatasetView]:
        check_name(name, "dataset")
        return self._resolve_with_row(name, self._row(name))

    def _resolve_with_row(
        self, name: str, row: dict[str, Any] | None
    ) -> tuple[list[DatasetBlob], DatasetView]:
        for _ in range(READ_ATTEMPTS):
            blobs = self._blobs(name)
            if not blobs:
                if row is not None:  # files removed straight from Blob: drop the stale row
                    with contextlib.suppress(ResourceNotFoundError):
                        self.table.delete_entity(PARTITION, name)
                raise NotFound(f"No dataset named '{name}'.", code="DATASET_NOT_FOUND")
            try:
                return blobs, self._view(name, blobs, row)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue  # replaced or removed while being read: list again
        raise Conflict(
            f"Dataset '{name}' is being replaced; retry shortly.",
            code="DATASET_CHANGED",
            headers={"Retry-After": "5"},
        )

    def _view(self, name: str, blobs: list[DatasetBlob], row: dict[str, Any] | None) -> DatasetView:
        key = fingerprint(blobs)
        if row is not None and row.get("fingerprint") == key:
            cached = _view_from_row(row)
            if cached is not None:
                return cached
        summaries = [self._summarize(b) for b in blobs]
        errors = [f"{b.path}: {s.error}" for b, s in zip(blobs, summaries, strict=True) if s.error]
        view = DatasetView(
            name=name,
            format=_format_of(blobs),
            size_bytes=sum(b.size for b in blobs),
            sha256=combined_sha256([s.sha256 for s in summaries]),
            columns=[] if errors else merge_profiles([s.profile for s in summaries]),
            row_count=0 if errors else sum(s.rows for s in summaries),
            uploaded_at=max(b.last_modified for b in blobs),
            files=[b.path for b in blobs],
            error="; ".join(errors)[:2000] if errors else None,
        )
        self._save(name, key, view)
        return view

    def _summarize(self, blob: DatasetBlob) -> _FileSummary:
        raw = BlobRangeReader(self.container, blob)
        if blob.format == "csv":
            hashing = HashingReader(raw)
            try:
                profile, rows = profile_csv(io.BufferedReader(hashing, READ_BLOCK), self.chunk_rows)
            except DatasetUnreadable as exc:
                return _FileSummary(sha256=hashing.drain(), rows=0, profile={}, error=exc.detail)
            return _FileSummary(sha256=hashing.drain(), rows=rows, profile=profile)
        # Parquet: the digest the API wrote at upload, else one streaming pass to hash it;
        # the schema and row count come from the footer alone.
        digest = blob.sha256 or HashingReader(raw).drain()
        raw.seek(0)
        try:
            profile, rows = profile_parquet(io.BufferedReader(raw, READ_BLOCK))
        except DatasetUnreadable as exc:
            return _FileSummary(sha256=digest, rows=0, profile={}, error=exc.detail)
        return _FileSummary(sha256=digest, rows=rows, profile=profile)

    def _frames(
        self,
        blobs: list[DatasetBlob],
        columns: list[str] | None,
        dtypes: dict[str, Dtype],
        chunksize: int,
    ) -> Iterator[pd.DataFrame]:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        for blob in blobs:
            stream = io.BufferedReader(BlobRangeReader(self.container, blob), READ_BLOCK)
            try:
                if blob.format == "parquet":
                    parquet = pq.ParquetFile(stream)
                    for batch in parquet.iter_batches(batch_size=chunksize, columns=columns):
                        yield batch.to_pandas(date_as_object=False)
                    continue
                yield from read_csv_chunks(stream, dtypes, columns, chunksize)
            except ResourceModifiedError:
                raise Conflict(
                    f"'{blob.path}' changed while it was being read; retry.",
                    code="DATASET_CHANGED",
                ) from None
            except ResourceNotFoundError:
                raise Conflict(
                    f"'{blob.path}' was removed while it was being read; retry.",
                    code="DATASET_CHANGED",
                ) from None
            except (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as exc:
                raise unreadable(f"'{blob.path}' cannot be read", exc) from None
            except (ValueError, TypeError, OverflowError) as exc:
                raise unreadable(
                    f"'{blob.path}' does not match the dataset's schema", exc
                ) from None

    # -- the Table cache --

    def _row(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self.table.get_entity(PARTITION, name))
        except ResourceNotFoundError:
            return None

    def _rows(self, names: list[str]) -> dict[str, dict[str, Any]]:
        if not names:
            return {}
        query = (
            f"PartitionKey eq {quote(PARTITION)} and RowKey ge {quote(min(names))}"
            f" and RowKey le {quote(max(names))}"
        )
        return {e["RowKey"]: dict(e) for e in self.table.query_entities(query)}

    def _save(self, name: str, key: str, view: DatasetView) -> None:
        from azure.data.tables import UpdateMode

        text = view.model_dump_json()
        parts = [text[i : i + META_PART_CHARS] for i in range(0, len(text), META_PART_CHARS)]
        if len(parts) > META_MAX_PARTS:
            log.warning("dataset metadata too large to cache", extra={"dataset": name})
            return
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": name,
            "fingerprint": key,
            "format": view.format,
            "sha256": view.sha256,
            "meta_parts": len(parts),
        }
        entity.update({f"meta_{i}": part for i, part in enumerate(parts)})
        try:
            self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        except AzureError:
            # Only a cache: the blobs are written and the next read recomputes the metadata.
            log.warning("could not cache dataset metadata", exc_info=True)


def _view_from_row(row: dict[str, Any]) -> DatasetView | None:
    try:
        text = "".join(row[f"meta_{i}"] for i in range(int(row["meta_parts"])))
        return DatasetView.model_validate_json(text)
    except (KeyError, TypeError, ValueError, ValidationError):
        return None  # an older or damaged row: recompute


def _format_of(blobs: Sequence[DatasetBlob]) -> Literal["csv", "parquet", "mixed"]:
    formats = {b.format for b in blobs}
    return formats.pop() if len(formats) == 1 else "mixed"


def _valid_name(name: str) -> bool:
    try:
        check_name(name, "dataset")
    except ValidationFailed:
        return False
    return True
