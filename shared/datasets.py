"""Datasets: CSV or Parquet training data in Blob ``datasets/{name}/...``.

A dataset is every ``.csv`` / ``.parquet`` blob (any file names, any depth, zero-byte
files skipped) under the prefix ``{name}/`` of the ``datasets`` container. Blob is the
source of truth because Azure Data Factory's Copy activity drops and replaces files there
without calling the API; the Table ``Datasets`` (PartitionKey ``datasets``, RowKey = name)
only caches the computed metadata, keyed by a fingerprint of the blobs' names and ETags,
and is recomputed whenever that fingerprint changes.

Metadata of a dataset made of several files: ``columns`` come from the first file (blob
name order), each dtype widened over the files that have the column (so every file can be
read with it), ``row_count`` and ``size_bytes`` are summed, ``format`` is ``mixed`` when CSV
and Parquet files meet, and ``sha256`` is the SHA-256 of the concatenated per-file SHA-256
hex digests in blob name order. A single-file dataset's ``sha256`` is the file's own.

``uploaded_at`` is the newest ``Last-Modified`` of its blobs, so an upload and a later
rediscovery of the same blobs describe the dataset identically.

pandas and pyarrow are imported inside the functions that need them: importing this
module (and so ``function_app``) must not load the ML stack.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from pydantic import BaseModel, ValidationError

from shared.dataset_limits import (
    DatasetLimits,
    check_csv,
    check_parquet_footer,
    decode_parquet_bounded,
)
from shared.errors import Conflict, NotFound, UnsupportedMediaType, ValidationFailed
from shared.names import check_name
from shared.observability import get_logger
from shared.tables import decode_continuation, encode_continuation, quote

if TYPE_CHECKING:
    import pandas as pd
    from azure.data.tables import TableClient
    from azure.storage.blob import ContainerClient

    from shared.storage import Storage

CONTAINER = "datasets"
TABLE = "Datasets"
PARTITION = "datasets"

Format = Literal["csv", "parquet"]
Dtype = Literal["int64", "float64", "bool", "string", "datetime", "category"]
# Per column, in file order: (dtype seen so far or None when no value yet, any value missing).
Profile = dict[str, tuple[Dtype | None, bool]]

EXTENSIONS: dict[str, Format] = {".csv": "csv", ".parquet": "parquet"}
CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})
PARQUET_MEDIA_TYPES = frozenset({"application/vnd.apache.parquet", "application/x-parquet"})
SNIFF_MEDIA_TYPES = frozenset({"", "application/octet-stream"})
CONTENT_TYPES: dict[str, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
PARQUET_MAGIC = b"PAR1"

DEFAULT_CHUNK_ROWS = 100_000
# Range-read size: bounds memory per open blob whatever the client's download defaults.
READ_BLOCK = 4 * 1024 * 1024
SNIFF_BYTES = 64 * 1024
# A Table string property holds 64 KiB of UTF-16 and an entity 1 MiB: wide schemas and
# many-file drops are split over several properties, and not cached beyond that.
META_PART_CHARS = 30_000
META_MAX_PARTS = 15
READ_ATTEMPTS = 3

log = get_logger("datasets")


class DatasetUnreadable(ValidationFailed):
    """The content is not a CSV/Parquet file pandas or pyarrow can read."""

    code, title = "DATASET_UNREADABLE", "Dataset unreadable"


class DatasetColumn(BaseModel):
    name: str
    dtype: Dtype


class DatasetView(BaseModel):
    """A dataset as the API shows it.

    ``error`` is set (and ``columns`` empty, ``row_count`` 0) when a file dropped straight
    into Blob cannot be read; the dataset is still listed so it can be found and fixed.
    """

    name: str
    format: Literal["csv", "parquet", "mixed"]
    size_bytes: int
    sha256: str
    columns: list[DatasetColumn]
    row_count: int
    uploaded_at: datetime
    files: list[str]
    error: str | None = None


@dataclass(frozen=True)
class DatasetBlob:
    """One data file of a dataset, pinned to the version (ETag) that was listed."""

    path: str
    format: Format
    size: int
    etag: str
    last_modified: datetime
    sha256: str | None = None  # from blob metadata, when the API wrote it


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset's data is: what training needs to read it."""

    name: str
    format: str  # "csv", "parquet" or "mixed"
    files: tuple[DatasetBlob, ...]

    @property
    def paths(self) -> list[str]:
        return [f.path for f in self.files]


# --- dtypes -----------------------------------------------------------------------------


def dtype_of_pandas(dtype: Any) -> Dtype:
    """The portable name of a pandas dtype.

    Mapping (CSV data and DataFrames): any bool/boolean -> ``bool``; any signed or unsigned
    integer -> ``int64``; any float -> ``float64``; datetime64 (naive or tz-aware) ->
    ``datetime``; Categorical -> ``category``; everything else (object, str, timedelta,
    complex, ...) -> ``string``.
    """
    import pandas as pd
    from pandas.api import types as t

    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if t.is_bool_dtype(dtype):
        return "bool"
    if t.is_integer_dtype(dtype):
        return "int64"
    if t.is_float_dtype(dtype):
        return "float64"
    if t.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def dtype_of_arrow(arrow_type: Any) -> Dtype:
    """The portable name of a pyarrow (Parquet) type.

    Mapping: dictionary-encoded -> ``category``; bool -> ``bool``; any integer width ->
    ``int64``; float16/32/64 and decimal -> ``float64``; timestamp and date -> ``datetime``;
    everything else (string, binary, time, duration, null, nested) -> ``string``.
    """
    import pyarrow as pa

    t = pa.types
    if t.is_dictionary(arrow_type):
        return "category"
    if t.is_boolean(arrow_type):
        return "bool"
    if t.is_integer(arrow_type):
        return "int64"
    if t.is_floating(arrow_type) or t.is_decimal(arrow_type):
        return "float64"
    if t.is_timestamp(arrow_type) or t.is_date(arrow_type):
        return "datetime"
    return "string"


def merge_dtypes(a: Dtype | None, b: Dtype | None) -> Dtype | None:
    """Widen a column's dtype across CSV chunks; ``None`` means "no value seen yet".

    Integers meeting floats become ``float64``; any other disagreement becomes ``string``.
    """
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} <= {"int64", "float64"}:
        return "float64"
    return "string"


def _to_datetime(values: Any) -> Any:
    import pandas as pd

    # utc=True: one rule for naive and offset-bearing text, and mixed offsets never raise.
    return pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")


def _text_kind(series: Any) -> Dtype:
    """What a text column of one CSV chunk holds: ``bool``, ISO 8601 ``datetime`` or text."""
    import pandas as pd

    values = series.dropna()
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "boolean":
        return "bool"  # True/False with gaps: pandas keeps these as object
    if kind == "string":
        try:
            parsed = _to_datetime(values)
        except (ValueError, TypeError, OverflowError):
            return "string"
        if not parsed.isna().any():
            return "datetime"
    return "string"


def chunk_dtypes(frame: pd.DataFrame) -> Profile:
    """The profile of one CSV chunk."""
    out: Profile = {}
    for position, name in enumerate(frame.columns):
        series = frame.iloc[:, position]
        missing = bool(series.isna().any())
        if series.isna().all():  # no value (or no row) here: says nothing about the type
            out[str(name)] = (None, missing)
            continue
        kind = dtype_of_pandas(series.dtype)
        if kind == "string":
            kind = _text_kind(series)
        out[str(name)] = (kind, missing)
    return out


# --- schema inference (no I/O: any binary file object) ---------------------------------


def _unreadable(what: str, exc: BaseException) -> DatasetUnreadable:
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return DatasetUnreadable(f"{what}: {message}")


def final_dtype(kind: Dtype | None, missing: bool) -> Dtype:
    """A profiled column's dtype: no value at all, or integers with gaps, read as float64."""
    if kind is None or (kind == "int64" and missing):
        return "float64"
    return kind


def merge_profiles(profiles: Sequence[Profile]) -> list[DatasetColumn]:
    """Columns of several files: the first file's names and order, dtypes widened over all."""
    columns = []
    for name in profiles[0]:
        kind: Dtype | None = None
        missing = False
        for profile in profiles:
            if name in profile:
                kind = merge_dtypes(kind, profile[name][0])
                missing = missing or profile[name][1]
        columns.append(DatasetColumn(name=name, dtype=final_dtype(kind, missing)))
    return columns


def profile_csv(stream: BinaryIO, chunksize: int = DEFAULT_CHUNK_ROWS) -> tuple[Profile, int]:
    """Profile and row count of a UTF-8 CSV with a header row, read in chunks.

    dtypes come from the data: each chunk is typed by pandas, text columns are checked for
    booleans and ISO 8601 timestamps, and the chunks' dtypes are widened with
    :func:`merge_dtypes`.
    """
    import pandas as pd

    profile: Profile = {}
    rows = 0
    try:
        reader = pd.read_csv(stream, chunksize=chunksize, encoding="utf-8", compression=None)
        with reader:
            for chunk in reader:
                rows += len(chunk)
                for name, (kind, missing) in chunk_dtypes(chunk).items():
                    seen, seen_missing = profile.get(name, (None, False))
                    profile[name] = (merge_dtypes(seen, kind), seen_missing or missing)
    except UnicodeDecodeError:
        raise DatasetUnreadable("The CSV is not valid UTF-8 text.") from None
    except pd.errors.EmptyDataError:
        raise DatasetUnreadable("The CSV is empty: a header row is required.") from None
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as exc:
        raise _unreadable("The CSV cannot be parsed", exc) from None
    return profile, rows


def infer_csv(
    stream: BinaryIO, chunksize: int = DEFAULT_CHUNK_ROWS
) -> tuple[list[DatasetColumn], int]:
    """Columns and row count of a CSV (see :func:`profile_csv`).

    A column without any value (or a header-only file) is ``float64``, and so are
    integers with gaps, as pandas reads them.
    """
    profile, rows = profile_csv(stream, chunksize)
    return merge_profiles([profile]), rows


def profile_parquet(
    source: Any, *, verify: bool = False, limits: DatasetLimits | None = None
) -> tuple[Profile, int]:
    """Profile and row count from the Parquet footer, without reading the data pages.

    ``verify`` also decodes every row group, batch by batch (uploads are checked once,
    so a corrupt file is refused at the door rather than at training time). Columns that
    only hold a pandas index are left out.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source)
        if limits is not None:  # the footer's counts before a single page is decoded
            check_parquet_footer(parquet, limits)
        schema = parquet.schema_arrow
        rows = parquet.metadata.num_rows
        if verify and limits is not None:
            decode_parquet_bounded(parquet, limits)
        elif verify:
            for _ in parquet.iter_batches(batch_size=65_536):
                pass
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _unreadable("The Parquet file cannot be read", exc) from None
    index: set[str] = set()
    with contextlib.suppress(ValueError, TypeError, AttributeError):  # foreign pandas metadata
        declared = (schema.pandas_metadata or {}).get("index_columns", [])
        index = {c for c in declared if isinstance(c, str)}
    # Parquet types are declared, not guessed: gaps do not change them.
    profile: Profile = {
        f.name: (dtype_of_arrow(f.type), False) for f in schema if f.name not in index
    }
    return profile, rows


def infer_parquet(source: Any, *, verify: bool = False) -> tuple[list[DatasetColumn], int]:
    """Columns and row count of a Parquet file (see :func:`profile_parquet`)."""
    profile, rows = profile_parquet(source, verify=verify)
    return merge_profiles([profile]), rows


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        # final=False: the sniffed prefix may end inside a multi-byte character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def upload_format(data: bytes, *, media_type: str | None, filename: str | None = None) -> Format:
    """CSV or Parquet, from the file name's extension, then the media type, then the bytes.

    415 for a media type or extension that is neither; 422 when the bytes contradict a
    declared Parquet (no ``PAR1`` magic) or the upload is empty.
    """
    mtype = (media_type or "").split(";")[0].strip().lower()
    ext = ""
    if filename and "." in filename.rsplit("/", 1)[-1]:
        ext = "." + filename.rsplit(".", 1)[-1].lower()
    fmt: Format | None = None
    if ext in EXTENSIONS:
        fmt = EXTENSIONS[ext]
    elif ext:
        raise UnsupportedMediaType(
            f"'{ext}' files are not datasets: upload .csv or .parquet.",
            code="DATASET_FORMAT_UNSUPPORTED",
        )
    elif mtype in CSV_MEDIA_TYPES:
        fmt = "csv"
    elif mtype in PARQUET_MEDIA_TYPES:
        fmt = "parquet"
    elif mtype not in SNIFF_MEDIA_TYPES and filename is None:
        raise UnsupportedMediaType(
            f"'{mtype}' is not a dataset type: send text/csv, application/vnd.apache.parquet,"
            " application/octet-stream or multipart/form-data with a 'file' field.",
            code="DATASET_FORMAT_UNSUPPORTED",
        )
    if not data:
        raise ValidationFailed("The upload is empty.")
    if fmt == "parquet" and not data.startswith(PARQUET_MAGIC):
        raise DatasetUnreadable("The upload is not a Parquet file (no PAR1 magic).")
    if fmt is not None:
        return fmt
    if data.startswith(PARQUET_MAGIC):
        return "parquet"
    if _looks_like_text(data[:SNIFF_BYTES]):
        return "csv"
    raise UnsupportedMediaType(
        "The upload is neither Parquet nor UTF-8 CSV text.", code="DATASET_FORMAT_UNSUPPORTED"
    )


def combined_sha256(digests: Sequence[str]) -> str:
    """One file: its digest. Several: SHA-256 of their hex digests concatenated in order."""
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(digests).encode("ascii")).hexdigest()


def format_of_path(path: str) -> Format | None:
    name = path.rsplit("/", 1)[-1].lower()
    for ext, fmt in EXTENSIONS.items():
        if name.endswith(ext) and len(name) > len(ext):
            return fmt
    return None


def fingerprint(blobs: Sequence[DatasetBlob]) -> str:
    listing = "\n".join(f"{b.path}\t{b.etag}" for b in sorted(blobs, key=lambda b: b.path))
    return hashlib.sha256(listing.encode()).hexdigest()


# --- reading blobs in bounded pieces -----------------------------------------------------


def _etag(value: str | None) -> str:
    # Listings give ETags bare, response headers quoted: compare them bare.
    return (value or "").strip('"')


def _quoted(value: str | None) -> str:
    return f'"{_etag(value)}"'


class BlobRangeReader(io.RawIOBase):
    """A seekable, read-only file over one blob version, fetched by HTTP range.

    Every read is pinned to the listed ETag, so a blob replaced mid-read fails with
    ``ResourceModifiedError`` instead of mixing two versions. pyarrow seeks to the footer
    and reads only the column chunks it needs; pandas reads it front to back.
    """

    def __init__(self, container: ContainerClient, blob: DatasetBlob) -> None:
        super().__init__()
        self._container = container
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blob.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._blob.size - self._pos)
        if want <= 0:
            return 0
        data = self._container.download_blob(
            self._blob.path,
            offset=self._pos,
            length=want,
            etag=_quoted(self._blob.etag),
            match_condition=MatchConditions.IfNotModified,
            max_concurrency=1,
        ).readall()
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class HashingReader(io.RawIOBase):
    """Passes a stream through, hashing every byte read, so parsing and hashing share a pass."""

    def __init__(self, inner: io.RawIOBase | io.BufferedIOBase) -> None:
        super().__init__()
        self._inner = inner
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer) or 0
        self.sha256.update(memoryview(buffer)[:n])
        return n

    def drain(self) -> str:
        """Hash what the parser did not read (it stops at an error); the full digest."""
        block = bytearray(READ_BLOCK)
        while self.readinto(block):
            pass
        return self.sha256.hexdigest()


# --- the store -------------------------------------------------------------------------


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

    @classmethod
    def from_storage(cls, storage: Storage) -> DatasetStore:
        from shared.settings import get_settings

        return cls(
            storage.container(CONTAINER),
            storage.table(TABLE),
            limits=DatasetLimits.from_settings(get_settings()),
        )

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
                        etag=_quoted(old.etag),
                        match_condition=MatchConditions.IfNotModified,
                    )
        blob = DatasetBlob(
            path=path,
            format=fmt,
            size=len(data),
            etag=_etag(written["etag"]),
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
            etag=_etag(written["etag"]),
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
        views = []
        for name in names:
            with contextlib.suppress(NotFound):  # a folder of markers only: not a dataset
                views.append(self._resolve_with_row(name, rows.get(name))[1])
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
                    etag=_etag(b.etag),
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

        csv_dtypes = {
            n: {"int64": "int64", "float64": "float64", "bool": "boolean"}.get(d, "str")
            for n, d in dtypes.items()
            if d != "datetime"
        }
        dates = [n for n, d in dtypes.items() if d == "datetime"]
        for blob in blobs:
            stream = io.BufferedReader(BlobRangeReader(self.container, blob), READ_BLOCK)
            try:
                if blob.format == "parquet":
                    parquet = pq.ParquetFile(stream)
                    for batch in parquet.iter_batches(batch_size=chunksize, columns=columns):
                        yield batch.to_pandas(date_as_object=False)
                    continue
                reader = pd.read_csv(
                    stream,
                    chunksize=chunksize,
                    usecols=columns,
                    dtype=csv_dtypes,
                    encoding="utf-8",
                    compression=None,
                )
                with reader:
                    for chunk in reader:
                        for col in dates:
                            if col in chunk.columns:
                                chunk[col] = _to_datetime(chunk[col])
                        yield chunk
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
                raise _unreadable(f"'{blob.path}' cannot be read", exc) from None
            except (ValueError, TypeError, OverflowError) as exc:
                raise _unreadable(
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
