"""Dataset schema inference and format detection on in-memory data (no I/O)."""

import hashlib
import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.datasets.blobs import HashingReader
from shared.datasets.dtypes import dtype_of_arrow, dtype_of_pandas, merge_dtypes, merge_profiles
from shared.datasets.formats import (
    combined_sha256,
    format_of_path,
    infer_csv,
    infer_parquet,
    profile_csv,
    upload_format,
)
from shared.datasets.schemas import DatasetUnreadable
from shared.errors import UnsupportedMediaType, ValidationFailed


def csv_schema(text: str, chunksize: int = 100_000) -> tuple[dict[str, str], int]:
    columns, rows = infer_csv(io.BytesIO(text.encode()), chunksize)
    return {c.name: c.dtype for c in columns}, rows


def parquet_bytes(table: pa.Table, **kw) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **kw)
    return sink.getvalue()


def test_csv_dtypes_from_the_data() -> None:
    text = (
        "id,price,ok,city,when,day\n"
        "1,2.5,true,Oslo,2024-01-02T03:04:05Z,2024-01-02\n"
        "2,3,False,Rome,2024-02-03T00:00:00+01:00,2024-01-03\n"
    )
    dtypes, rows = csv_schema(text)
    assert rows == 2
    assert list(dtypes) == ["id", "price", "ok", "city", "when", "day"]  # file order
    assert dtypes == {
        "id": "int64",
        "price": "float64",
        "ok": "bool",
        "city": "string",
        "when": "datetime",
        "day": "datetime",
    }


def test_csv_rows_are_counted_over_chunks_and_dtypes_widened() -> None:
    lines = ["n,x,t,d"]
    lines += [f"{i},{i},a{i},2024-01-01" for i in range(5)]
    lines += [f"{i},{i}.5,{i},not-a-date" for i in range(5, 9)]  # later chunk: wider types
    dtypes, rows = csv_schema("\n".join(lines) + "\n", chunksize=3)
    assert rows == 9
    # int + float -> float; text stays text even when a chunk is all digits; a date column
    # with one non-date chunk is text
    assert dtypes == {"n": "int64", "x": "float64", "t": "string", "d": "string"}


def test_csv_gaps_and_empty_columns() -> None:
    text = "a,b,c,flag\n1,,x,True\n,,y,\n3,,z,False\n"
    dtypes, rows = csv_schema(text, chunksize=1)
    # integers with a gap read as float by pandas; a column with no value is float64;
    # booleans with a gap stay bool
    assert dtypes == {"a": "float64", "b": "float64", "c": "string", "flag": "bool"}
    assert rows == 3


def test_csv_an_empty_chunk_does_not_widen_a_column() -> None:
    lines = ["k,v"] + [f"{i}," for i in range(3)] + [f"{i},{i}" for i in range(3, 6)]
    dtypes, _ = csv_schema("\n".join(lines) + "\n", chunksize=3)
    assert dtypes == {"k": "int64", "v": "float64"}  # gaps in v, so not int


def test_csv_header_only() -> None:
    dtypes, rows = csv_schema("a,b\n")
    assert rows == 0 and list(dtypes) == ["a", "b"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"a,b\n1,2\n3,4,5\n", "cannot be parsed"),
        (b"a,b\n\xff\xfe,\x80\n", "UTF-8"),
        (b"", "empty"),
        (b"\n\n", "empty"),
    ],
)
def test_unreadable_csv(data: bytes, fragment: str) -> None:
    with pytest.raises(DatasetUnreadable) as err:
        infer_csv(io.BytesIO(data))
    assert fragment in err.value.detail
    assert err.value.status == 422 and err.value.code == "DATASET_UNREADABLE"


def test_parquet_schema_and_rows_from_the_footer() -> None:
    table = pa.table(
        {
            "i8": pa.array([1, 2, 3], pa.int8()),
            "u64": pa.array([1, 2, 3], pa.uint64()),
            "f32": pa.array([1.0, None, 3.0], pa.float32()),
            "dec": pa.array([1, 2, 3], pa.decimal128(10, 2)),
            "b": [True, False, None],
            "s": ["x", "y", None],
            "ts": pa.array([0, 1, 2], pa.timestamp("ms", tz="UTC")),
            "dt": pa.array([0, 1, 2], pa.date32()),
            "cat": pa.array(["a", "b", "a"]).dictionary_encode(),
            "blob": [b"x", b"y", b"z"],
            "lst": [[1], [2], []],
        }
    )
    columns, rows = infer_parquet(io.BytesIO(parquet_bytes(table, row_group_size=1)))
    assert rows == 3
    assert {c.name: c.dtype for c in columns} == {
        "i8": "int64",
        "u64": "int64",
        "f32": "float64",
        "dec": "float64",
        "b": "bool",
        "s": "string",
        "ts": "datetime",
        "dt": "datetime",
        "cat": "category",
        "blob": "string",
        "lst": "string",
    }


def test_parquet_from_pandas_hides_the_index() -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5]}, index=pd.Index([10, 20], name="key"))
    table = pa.Table.from_pandas(frame)
    columns, rows = infer_parquet(io.BytesIO(parquet_bytes(table)))
    assert [(c.name, c.dtype) for c in columns] == [("x", "float64")] and rows == 2


def test_corrupt_parquet_is_unreadable() -> None:
    good = parquet_bytes(pa.table({"x": list(range(1000))}))
    for bad in (b"PAR1 not really", good[:-20], b"PAR1" + b"\0" * 100 + good[-8:]):
        with pytest.raises(DatasetUnreadable):
            infer_parquet(io.BytesIO(bad), verify=True)


def test_pandas_dtype_names() -> None:
    assert dtype_of_pandas(pd.Int64Dtype()) == "int64"
    assert dtype_of_pandas(pd.UInt8Dtype()) == "int64"
    assert dtype_of_pandas(pd.BooleanDtype()) == "bool"
    assert dtype_of_pandas(pd.CategoricalDtype(["a"])) == "category"
    assert dtype_of_pandas(pd.DatetimeTZDtype(tz="UTC")) == "datetime"
    assert dtype_of_pandas(pd.Series(["a"]).dtype) == "string"
    assert dtype_of_pandas(pd.Series([pd.Timedelta(1)]).dtype) == "string"
    assert dtype_of_arrow(pa.null()) == "string"


@pytest.mark.parametrize(
    ("a", "b", "merged"),
    [
        (None, "int64", "int64"),
        ("bool", None, "bool"),
        ("int64", "int64", "int64"),
        ("int64", "float64", "float64"),
        ("float64", "int64", "float64"),
        ("int64", "string", "string"),
        ("datetime", "string", "string"),
        ("bool", "int64", "string"),
    ],
)
def test_merge_dtypes(a, b, merged) -> None:
    assert merge_dtypes(a, b) == merged


PARQUET = parquet_bytes(pa.table({"x": [1]}))


@pytest.mark.parametrize(
    ("data", "media_type", "filename", "expected"),
    [
        (b"a\n1\n", "text/csv", None, "csv"),
        (b"a\n1\n", "text/csv; charset=utf-8", None, "csv"),
        (PARQUET, "application/vnd.apache.parquet", None, "parquet"),
        (PARQUET, "application/octet-stream", None, "parquet"),
        (b"a\n1\n", "application/octet-stream", None, "csv"),
        (PARQUET, None, "upload.bin.parquet", "parquet"),
        (b"a\n1\n", "application/vnd.ms-excel", "Data.CSV", "csv"),
        (PARQUET, None, "noextension", "parquet"),
        (b"a\n1\n", "text/plain", "", "csv"),
        ("naïve\n1\n".encode() * 20_000, None, "blob", "csv"),  # sniff cut mid-character
    ],
)
def test_upload_format(data, media_type, filename, expected) -> None:
    assert upload_format(data, media_type=media_type, filename=filename) == expected


@pytest.mark.parametrize(
    ("data", "media_type", "filename", "error"),
    [
        (b"{}", "application/json", None, UnsupportedMediaType),
        (b"a\n1\n", "text/plain", None, UnsupportedMediaType),
        (b"PK\x03\x04", None, "book.xlsx", UnsupportedMediaType),
        (b"\x89PNG\r\n\x00\x00", "application/octet-stream", None, UnsupportedMediaType),
        (b"a,b\n", "application/vnd.apache.parquet", None, DatasetUnreadable),
        (b"", "text/csv", None, ValidationFailed),
    ],
)
def test_upload_format_refusals(data, media_type, filename, error) -> None:
    with pytest.raises(error):
        upload_format(data, media_type=media_type, filename=filename)


def test_combined_sha256_and_paths() -> None:
    one = hashlib.sha256(b"a").hexdigest()
    two = hashlib.sha256(b"b").hexdigest()
    assert combined_sha256([one]) == one
    assert combined_sha256([one, two]) == hashlib.sha256((one + two).encode()).hexdigest()
    assert format_of_path("sales/2024/part-0.PARQUET") == "parquet"
    assert format_of_path("sales/data.csv") == "csv"
    assert format_of_path("sales/_SUCCESS") is None
    assert format_of_path("sales/.csv") is None


def test_hashing_reader_covers_what_the_parser_left() -> None:
    data = b"a,b\n1,2\n3,4,5\n" + b"9,9\n" * 1000
    reader = HashingReader(io.BytesIO(data))
    with pytest.raises(DatasetUnreadable):
        infer_csv(io.BufferedReader(reader, 16))
    assert reader.drain() == hashlib.sha256(data).hexdigest()


def test_columns_of_several_files_are_widened_over_all_of_them() -> None:
    first, _ = profile_csv(io.BytesIO(b"n,flag,only_first\n1,true,x\n"))
    second, _ = profile_csv(io.BytesIO(b"flag,n,extra\n,,1\n"))
    columns = merge_profiles([first, second])
    # the first file's names and order; n has a gap in the second file, flag none of value
    assert [(c.name, c.dtype) for c in columns] == [
        ("n", "float64"),
        ("flag", "bool"),
        ("only_first", "string"),
    ]
