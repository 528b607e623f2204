"""Datasets over the real HTTP path: uploads, ADF drops straight into Blob, limits, access."""

import contextlib
import hashlib
import io
import secrets
from collections.abc import Iterator

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.e2e

MAX_DATASET_BYTES = 5_000_000  # MAX_DATASET_BYTES in tests/conftest.py TEST_ENV
CSV = b"id,price,ok,city,when\n1,2.5,true,Oslo,2024-01-02T03:04:05Z\n2,3,false,Rome,2024-02-03\n"
CSV_TYPE = {"Content-Type": "text/csv"}
PARQUET_TYPE = {"Content-Type": "application/vnd.apache.parquet"}


def new_name() -> str:
    return f"ds-{secrets.token_hex(4)}"


def parquet(rows: int = 5, row_group_size: int | None = None) -> bytes:
    table = pa.table(
        {
            "x": pa.array(range(rows), pa.int32()),
            "y": [i / 2 for i in range(rows)],
            "label": pa.array(["a", "b"] * (rows // 2) + ["a"] * (rows % 2)).dictionary_encode(),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


@pytest.fixture()
def blobs(app_env: dict[str, str]) -> Iterator[object]:
    """The datasets container, reached with the SDK as ADF's Copy activity would."""
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(app_env["STORAGE_CONNECTION_STRING"])
    container = service.get_container_client("datasets")
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    try:
        yield container
    finally:
        service.close()


@pytest.fixture()
def trainer(client: httpx.Client, admin_headers: dict[str, str], make_user) -> dict[str, str]:
    r = client.put("/roles/ds-trainer", headers=admin_headers, json={"scopes": ["train"]})
    assert r.status_code in (200, 201), r.text
    return make_user(["ds-trainer"])[3]


def names_in(container, name: str) -> list[str]:
    return sorted(b.name for b in container.list_blobs(name_starts_with=f"{name}/"))


def all_datasets(client: httpx.Client, headers: dict[str, str], limit: int = 200) -> list[dict]:
    items, token = [], None
    for _ in range(200):
        params = {"limit": limit} | ({"continuation_token": token} if token else {})
        r = client.get("/datasets", headers=headers, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        token = page["continuation_token"]
        if not token:
            return items
    raise AssertionError("pagination did not end")


def test_csv_upload_infers_the_schema(client: httpx.Client, trainer, blobs) -> None:
    name = new_name()
    r = client.put(f"/datasets/{name}", content=CSV, headers={**trainer, **CSV_TYPE})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/datasets/{name}"
    meta = r.json()
    assert set(meta) == {
        "name",
        "format",
        "size_bytes",
        "sha256",
        "columns",
        "row_count",
        "uploaded_at",
        "files",
        "error",
    }
    assert meta["name"] == name and meta["format"] == "csv" and meta["error"] is None
    assert meta["size_bytes"] == len(CSV) and meta["row_count"] == 2
    assert meta["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert meta["columns"] == [
        {"name": "id", "dtype": "int64"},
        {"name": "price", "dtype": "float64"},
        {"name": "ok", "dtype": "bool"},
        {"name": "city", "dtype": "string"},
        {"name": "when", "dtype": "datetime"},
    ]
    assert meta["files"] == [f"{name}/data.csv"]
    props = blobs.get_blob_client(f"{name}/data.csv").get_blob_properties()
    assert props.metadata["sha256"] == meta["sha256"]
    assert props.content_settings.content_type == "text/csv"
    got = client.get(f"/datasets/{name}", headers=trainer)
    assert got.status_code == 200 and got.json() == meta
    assert any(d["name"] == name for d in all_datasets(client, trainer))


def test_parquet_upload_reads_the_footer(client: httpx.Client, trainer) -> None:
    name = new_name()
    data = parquet(rows=7, row_group_size=3)
    r = client.put(f"/datasets/{name}", content=data, headers={**trainer, **PARQUET_TYPE})
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["format"] == "parquet" and meta["row_count"] == 7
    assert meta["columns"] == [
        {"name": "x", "dtype": "int64"},
        {"name": "y", "dtype": "float64"},
        {"name": "label", "dtype": "category"},
    ]
    assert meta["files"] == [f"{name}/data.parquet"]
    assert meta["sha256"] == hashlib.sha256(data).hexdigest()
    # application/octet-stream is recognised by the PAR1 magic; same name -> 200
    r = client.put(
        f"/datasets/{name}",
        content=data,
        headers={**trainer, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 200 and r.json()["format"] == "parquet"


def test_multipart_upload(client: httpx.Client, trainer) -> None:
    name = new_name()
    r = client.put(
        f"/datasets/{name}",
        headers=trainer,
        files={"file": ("train.csv", CSV, "application/vnd.ms-excel")},
    )
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "csv" and r.json()["row_count"] == 2
    r = client.put(
        f"/datasets/{name}",
        headers=trainer,
        files={"file": ("export", parquet(), "application/octet-stream")},
    )
    assert r.status_code == 200 and r.json()["format"] == "parquet"  # sniffed
    r = client.put(f"/datasets/{name}", headers=trainer, files={"other": ("a.csv", CSV)})
    assert r.status_code == 422
    r = client.put(
        f"/datasets/{name}",
        headers=trainer,
        files={"file": ("book.xlsx", b"PK\x03\x04", "application/octet-stream")},
    )
    assert r.status_code == 415


def test_replace_leaves_no_old_file(client: httpx.Client, trainer, blobs) -> None:
    name = new_name()
    assert (
        client.put(f"/datasets/{name}", content=CSV, headers={**trainer, **CSV_TYPE}).status_code
        == 201
    )
    blobs.upload_blob(f"{name}/extra/part-9.csv", CSV)  # a stray file ADF left there
    data = parquet()
    r = client.put(f"/datasets/{name}", content=data, headers={**trainer, **PARQUET_TYPE})
    assert r.status_code == 200, r.text
    assert r.json()["files"] == [f"{name}/data.parquet"]
    assert names_in(blobs, name) == [f"{name}/data.parquet"]
    got = client.get(f"/datasets/{name}", headers=trainer).json()
    assert got["format"] == "parquet" and got["row_count"] == 5
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


def test_adf_drop_is_discovered_and_described(client: httpx.Client, trainer, blobs) -> None:
    name = new_name()
    part1 = b"a,b\n1,x\n2,y\n"
    part2 = b"a,b\n3,z\n"
    blobs.upload_blob(f"{name}/2024/part-00001.csv", part1)
    blobs.upload_blob(f"{name}/2024/part-00000.csv", part2)
    blobs.upload_blob(f"{name}/_SUCCESS", b"")
    r = client.get(f"/datasets/{name}", headers=trainer)
    assert r.status_code == 200, r.text
    meta = r.json()
    digests = [hashlib.sha256(p).hexdigest() for p in (part2, part1)]  # name order
    assert meta["files"] == [f"{name}/2024/part-00000.csv", f"{name}/2024/part-00001.csv"]
    assert meta["row_count"] == 3 and meta["size_bytes"] == len(part1) + len(part2)
    assert meta["sha256"] == hashlib.sha256("".join(digests).encode()).hexdigest()
    assert meta["columns"] == [{"name": "a", "dtype": "int64"}, {"name": "b", "dtype": "string"}]
    listed = [d for d in all_datasets(client, trainer) if d["name"] == name]
    assert listed == [meta]
    # ADF replaces a file: the changed ETag makes the metadata recomputed.
    blobs.upload_blob(f"{name}/2024/part-00001.csv", b"a,b\n1,x\n2,y\n4,w\n", overwrite=True)
    assert client.get(f"/datasets/{name}", headers=trainer).json()["row_count"] == 4
    # A Parquet drop without the API's metadata is hashed and read from its footer.
    data = parquet(rows=4)
    blobs.upload_blob(f"{name}/2024/part-00002.parquet", data)
    meta = client.get(f"/datasets/{name}", headers=trainer).json()
    assert meta["format"] == "mixed" and meta["row_count"] == 8
    # ADF deletes everything: the dataset is gone.
    for blob in names_in(blobs, name):
        blobs.delete_blob(blob)
    r = client.get(f"/datasets/{name}", headers=trainer)
    assert r.status_code == 404 and r.json()["code"] == "DATASET_NOT_FOUND"
    assert all(d["name"] != name for d in all_datasets(client, trainer))


def test_unreadable_drop_is_listed_with_its_error(client: httpx.Client, trainer, blobs) -> None:
    name = new_name()
    blobs.upload_blob(f"{name}/broken.parquet", b"PAR1 this is not parquet PAR1")
    blobs.upload_blob(f"{name}/ragged.csv", b"a,b\n1,2\n3,4,5\n")
    meta = client.get(f"/datasets/{name}", headers=trainer).json()
    assert meta["error"] and "broken.parquet" in meta["error"] and "ragged.csv" in meta["error"]
    assert meta["columns"] == [] and meta["row_count"] == 0 and len(meta["sha256"]) == 64
    assert any(d["name"] == name and d["error"] for d in all_datasets(client, trainer))


def test_pagination(client: httpx.Client, trainer) -> None:
    made = {new_name() for _ in range(3)}
    for name in made:
        assert (
            client.put(
                f"/datasets/{name}", content=CSV, headers={**trainer, **CSV_TYPE}
            ).status_code
            == 201
        )
    seen = [d["name"] for d in all_datasets(client, trainer, limit=2)]
    assert made <= set(seen) and len(seen) == len(set(seen))
    r = client.get("/datasets", headers=trainer, params={"continuation_token": "!!bad"})
    assert r.status_code == 422
    assert client.get("/datasets", headers=trainer, params={"limit": 0}).status_code == 422


def test_size_limit(client: httpx.Client, trainer, blobs) -> None:
    name = new_name()
    big = b"a,b\n" + b"1,2\n" * (MAX_DATASET_BYTES // 4)
    assert len(big) > MAX_DATASET_BYTES
    r = client.put(f"/datasets/{name}", content=big, headers={**trainer, **CSV_TYPE})
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
    r = client.put(f"/datasets/{name}", headers=trainer, files={"file": ("big.csv", big)})
    assert r.status_code == 413
    assert names_in(blobs, name) == []
    ok = client.put(
        f"/datasets/{name}", content=big[: MAX_DATASET_BYTES - 2], headers={**trainer, **CSV_TYPE}
    )
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    "bad",
    [
        "..%2Fx",
        "..%2F..%2Fmodels",
        "a/b",
        "UPPER",
        "d%C3%A4t%C3%A4",
        "x.",
        "a..b",
        "-lead",
        "%2E%2E",
    ],
)
def test_bad_names_never_reach_storage(
    client: httpx.Client, trainer, admin_headers, blobs, bad: str
) -> None:
    before = sorted(b.name for b in blobs.list_blobs())
    for method, headers in (("PUT", trainer), ("GET", trainer), ("DELETE", admin_headers)):
        r = client.request(method, f"/datasets/{bad}", content=CSV, headers={**headers, **CSV_TYPE})
        assert r.status_code in (404, 422), (method, bad, r.status_code)
        if r.status_code == 404:  # no route matched: the store never looked
            assert "DATASET_NOT_FOUND" not in r.text, (method, bad)
    assert sorted(b.name for b in blobs.list_blobs()) == before


@pytest.mark.parametrize(
    ("body", "ctype", "status", "code"),
    [
        (b"a,b\n1,2\n3,4,5\n", "text/csv", 422, "DATASET_UNREADABLE"),
        (b"a,b\n\xff\xfe\x00,1\n", "text/csv", 422, "DATASET_UNREADABLE"),
        (b"", "text/csv", 422, "VALIDATION_FAILED"),
        (CSV, "application/vnd.apache.parquet", 422, "DATASET_UNREADABLE"),
        (b"PAR1garbagePAR1", "application/octet-stream", 422, "DATASET_UNREADABLE"),
        (b'{"a": 1}', "application/json", 415, "DATASET_FORMAT_UNSUPPORTED"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "application/octet-stream",
            415,
            "DATASET_FORMAT_UNSUPPORTED",
        ),
    ],
)
def test_bad_content(client: httpx.Client, trainer, blobs, body, ctype, status, code) -> None:
    name = new_name()
    r = client.put(f"/datasets/{name}", content=body, headers={**trainer, "Content-Type": ctype})
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == code and problem["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    assert names_in(blobs, name) == []


def test_access_rules(client: httpx.Client, trainer, admin_headers, make_user, blobs) -> None:
    name = new_name()
    _, _, _, user = make_user(["user"])  # models:read + predict, no train
    for method, path in (
        ("PUT", f"/datasets/{name}"),
        ("GET", f"/datasets/{name}"),
        ("GET", "/datasets"),
        ("DELETE", f"/datasets/{name}"),
    ):
        r = client.request(method, path, content=CSV, headers={**user, **CSV_TYPE})
        assert r.status_code == 403, (method, path)
    assert client.get(f"/datasets/{name}").status_code == 401
    assert (
        client.put(f"/datasets/{name}", content=CSV, headers={**trainer, **CSV_TYPE}).status_code
        == 201
    )
    r = client.delete(f"/datasets/{name}", headers=trainer)
    assert r.status_code == 403 and r.json()["code"] == "ADMIN_REQUIRED"
    assert client.delete(f"/datasets/{name}", headers=admin_headers).status_code == 204
    assert names_in(blobs, name) == []
    assert client.get(f"/datasets/{name}", headers=trainer).status_code == 404
    r = client.delete(f"/datasets/{name}", headers=admin_headers)
    assert r.status_code == 404 and r.json()["code"] == "DATASET_NOT_FOUND"


def test_openapi_lists_the_dataset_routes(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert set(doc["paths"]["/datasets/{name}"]) == {"get", "put", "delete"}
    assert "get" in doc["paths"]["/datasets"]
    put = doc["paths"]["/datasets/{name}"]["put"]
    assert "text/csv" in put["requestBody"]["content"]
    assert {"413", "415", "422"} <= set(put["responses"])
    assert "DatasetView" in doc["components"]["schemas"]


def test_iter_frames_for_training(client: httpx.Client, trainer, blobs, services) -> None:
    """The service training uses: chunks with the described dtypes, from both formats."""
    import pandas as pd

    from shared.errors import NotFound, ValidationFailed

    store = services.dataset_store
    name = new_name()
    rows = b"".join(
        f"{i},{i * 1.5},{'true' if i % 2 else 'false'},c{i}\n".encode() for i in range(10)
    )
    blobs.upload_blob(f"{name}/a.csv", b"n,f,b,s\n" + rows)
    blobs.upload_blob(f"{name}/b.csv", b"n,f,b,s\n10,1.0,,z\n")
    blobs.upload_blob(f"{name}/c.csv", b"n,f,b,s\n,2,true,q\n")  # a gap in the int column
    location = store.locate(name)
    assert location.format == "csv"
    assert location.paths == [f"{name}/a.csv", f"{name}/b.csv", f"{name}/c.csv"]
    meta = store.get(name)
    assert {c.name: c.dtype for c in meta.columns} == {
        "n": "float64",
        "f": "float64",
        "b": "bool",
        "s": "string",
    }  # widened over files
    frames = list(store.iter_frames(name, chunksize=4))
    assert [len(f) for f in frames] == [4, 4, 2, 1, 1]  # chunks never span files
    assert all(list(f.columns) == ["n", "f", "b", "s"] for f in frames)
    assert {str(f["b"].dtype) for f in frames} == {"boolean"}
    assert {str(f["n"].dtype) for f in frames} == {"float64"}
    whole = pd.concat(frames, ignore_index=True)
    assert whole["n"].tolist()[:11] == list(range(11)) and pd.isna(whole["n"].iloc[11])
    only = list(store.iter_frames(name, columns=["s"], chunksize=100))
    assert [list(f.columns) for f in only] == [["s"], ["s"], ["s"]]
    with pytest.raises(ValidationFailed):
        store.iter_frames(name, columns=["nope"])
    with pytest.raises(NotFound):
        store.iter_frames(new_name())

    pname = new_name()
    assert (
        client.put(
            f"/datasets/{pname}",
            content=parquet(rows=9, row_group_size=4),
            headers={**trainer, **PARQUET_TYPE},
        ).status_code
        == 201
    )
    batches = list(store.iter_frames(pname, columns=["x", "label"], chunksize=4))
    assert sum(len(b) for b in batches) == 9
    assert all(list(b.columns) == ["x", "label"] for b in batches)
    assert str(batches[0]["label"].dtype) == "category"


def test_metadata_is_cached_by_etag(
    client: httpx.Client, trainer, blobs, monkeypatch, services
) -> None:
    """Reads after an upload use the Table row; a changed blob is read again."""
    from shared.datasets.store import DatasetStore

    name = new_name()
    assert (
        client.put(f"/datasets/{name}", content=CSV, headers={**trainer, **CSV_TYPE}).status_code
        == 201
    )
    store = services.dataset_store
    read = []
    summarize = DatasetStore._summarize
    monkeypatch.setattr(
        DatasetStore,
        "_summarize",
        lambda self, blob: read.append(blob.path) or summarize(self, blob),
    )
    assert store.get(name).row_count == 2
    assert client.get(f"/datasets/{name}", headers=trainer).json()["row_count"] == 2
    assert read == []
    blobs.upload_blob(f"{name}/data.csv", CSV + b"3,1,true,Oslo,2024-03-01\n", overwrite=True)
    assert store.get(name).row_count == 3
    assert read == [f"{name}/data.csv"]
    assert store.get(name).row_count == 3 and len(read) == 1
