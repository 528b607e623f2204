"""Reading CSV and Parquet: format detection, schema profiles, the one CSV chunk reader.

No I/O of its own: every function takes a binary file object (a local file, or a blob
through ``shared.datasets.blobs``). pandas and pyarrow load inside the functions.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.datasets.dtypes import (
    chunk_dtypes,
    dtype_of_arrow,
    merge_dtypes,
    merge_profiles,
    to_datetime,
)
from shared.datasets.limits import (
    DatasetLimits,
    check_parquet_footer,
    decode_parquet_bounded,
)
from shared.datasets.schemas import (
    DatasetBlob,
    DatasetColumn,
    DatasetUnreadable,
    Dtype,
    Format,
    Profile,
)
from shared.errors import UnsupportedMediaType, ValidationFailed

if TYPE_CHECKING:
    import pandas as pd

EXTENSIONS: dict[str, Format] = {".csv": "csv", ".parquet": "parquet"}
CSV_MEDIA_TYPES = frozenset({"text/csv", "application/csv"})
PARQUET_MEDIA_TYPES = frozenset({"application/vnd.apache.parquet", "application/x-parquet"})
SNIFF_MEDIA_TYPES = frozenset({"", "application/octet-stream"})
CONTENT_TYPES: dict[str, str] = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
PARQUET_MAGIC = b"PAR1"
DEFAULT_CHUNK_ROWS = 100_000
SNIFF_BYTES = 64 * 1024
# Dataset dtypes -> what pandas reads a CSV column as (datetimes are parsed after).
CSV_DTYPES = {"int64": "int64", "float64": "float64", "bool": "boolean"}


def unreadable(what: str, exc: BaseException) -> DatasetUnreadable:
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return DatasetUnreadable(f"{what}: {message}")


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
        raise unreadable("The CSV cannot be parsed", exc) from None
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
        raise unreadable("The Parquet file cannot be read", exc) from None
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


def read_csv_chunks(
    stream: BinaryIO,
    dtypes: dict[str, Dtype] | dict[str, str],
    columns: Sequence[str] | None = None,
    chunksize: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """A UTF-8 CSV in DataFrame chunks, typed as the dataset's dtypes describe its columns.

    The one CSV chunk reader: training, evaluation and batch scoring all read CSV here.
    ``columns``: only these (default: all); datetimes are parsed as ISO 8601, in UTC.
    """
    import pandas as pd

    wanted = set(columns) if columns is not None else None
    typed = {
        n: CSV_DTYPES.get(d, "str")
        for n, d in dtypes.items()
        if d != "datetime" and (wanted is None or n in wanted)
    }
    dates = [n for n, d in dtypes.items() if d == "datetime" and (wanted is None or n in wanted)]
    reader = pd.read_csv(
        stream,
        chunksize=chunksize,
        usecols=list(columns) if columns is not None else None,
        dtype=typed,
        encoding="utf-8",
        compression=None,
    )
    with reader:
        for chunk in reader:
            for col in dates:
                if col in chunk.columns:
                    chunk[col] = to_datetime(chunk[col])
            yield chunk
