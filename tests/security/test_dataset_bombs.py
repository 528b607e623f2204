"""Issue 15 #4: dataset uploads are bounded in shape and decompressed size, refused with
413/422 problem+json before anything is stored. Limits under test (tests/conftest.py):
2,000 columns, 256-char names, 1 MiB rows, 20 MB decompressed, 2,000,000 rows."""

from __future__ import annotations

import io
import secrets

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


def parquet(table) -> bytes:
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def wide_csv() -> bytes:
    header = ",".join(f"c{i}" for i in range(5000))
    return (header + "\n" + ",".join("1" for _ in range(5000)) + "\n").encode()


def long_name_csv() -> bytes:
    return ("x" * 300 + ",b\n1,2\n").encode()


def long_line_csv() -> bytes:
    return b"a,b\n" + b"1," + b"z" * 2_000_000 + b"\n"


def many_rows_parquet() -> bytes:
    import pyarrow as pa

    return parquet(pa.table({"a": pa.array([0] * 3_000_000, type=pa.int8())}))


def fat_strings_parquet() -> bytes:
    import pyarrow as pa

    return parquet(pa.table({"s": pa.array(["q" * 3_000_000] * 8)}))


def dictionary_bomb_parquet() -> bytes:
    """250,000 copies of one 100-byte string: tiny on disk (dictionary + RLE), 25 MB read."""
    import pyarrow as pa

    return parquet(pa.table({"s": pa.array(["w" * 100] * 250_000)}))


def wide_parquet() -> bytes:
    import pyarrow as pa

    return parquet(pa.table({f"c{i}": pa.array([1], type=pa.int8()) for i in range(3000)}))


CASES = [
    ("wide-csv", wide_csv, "text/csv", 422, "DATASET_TOO_WIDE"),
    ("long-name", long_name_csv, "text/csv", 422, "DATASET_COLUMN_NAME_TOO_LONG"),
    ("long-line", long_line_csv, "text/csv", 422, "DATASET_ROW_TOO_LARGE"),
    ("many-rows", many_rows_parquet, "application/vnd.apache.parquet", 413, "DATASET_TOO_LARGE"),
    (
        "fat-strings",
        fat_strings_parquet,
        "application/vnd.apache.parquet",
        422,
        "DATASET_ROW_TOO_LARGE",
    ),
    (
        "dict-bomb",
        dictionary_bomb_parquet,
        "application/vnd.apache.parquet",
        413,
        "DATASET_TOO_LARGE",
    ),
    ("wide-parquet", wide_parquet, "application/vnd.apache.parquet", 422, "DATASET_TOO_WIDE"),
]


@pytest.mark.parametrize(
    ("label", "make", "ctype", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_dataset_bombs_are_refused_and_nothing_is_stored(
    client, admin_headers, storage_state, label, make, ctype, status, code
) -> None:
    data = make()
    assert len(data) < 5_000_000  # under MAX_DATASET_BYTES: the shape is what is refused
    name = f"bomb-{label}-{secrets.token_hex(3)}"
    before = storage_state()
    r = client.put(
        f"/datasets/{name}", headers={**admin_headers, "Content-Type": ctype}, content=data
    )
    assert_problem(r, status, code)
    assert storage_state() == before
    assert client.get(f"/datasets/{name}", headers=admin_headers).status_code == 404


def test_a_dataset_within_the_limits_is_accepted(client, admin_headers) -> None:
    import pyarrow as pa

    data = parquet(pa.table({f"c{i}": pa.array(range(100)) for i in range(50)}))
    name = f"ok-{secrets.token_hex(3)}"
    r = client.put(
        f"/datasets/{name}",
        headers={**admin_headers, "Content-Type": "application/vnd.apache.parquet"},
        content=data,
    )
    assert r.status_code == 201, r.text
    assert r.json()["row_count"] == 100 and len(r.json()["columns"]) == 50
