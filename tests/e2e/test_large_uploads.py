"""Files over the host's body limit go straight to Blob with a short-lived write-only URL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = pytest.mark.e2e
CSV = b"x,y,label\n" + b"".join(f"{i},{i % 5},{i % 2}\n".encode() for i in range(200))


def upload_url(client: httpx.Client, headers: dict, name: str, file_name: str) -> httpx.Response:
    return client.post(
        f"/datasets/{name}/upload-url", headers=headers, json={"file_name": file_name}
    )


def test_a_file_put_to_the_upload_url_becomes_the_dataset(client, admin_headers) -> None:
    name = f"big-{secrets.token_hex(3)}"
    r = upload_url(client, admin_headers, name, "part-0001.csv")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["method"] == "PUT" and body["blob"] == f"datasets/{name}/part-0001.csv"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(minutes=10) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    assert r.headers["cache-control"] == "no-store"
    put = httpx.put(body["url"], content=CSV, headers=body["headers"], timeout=30)
    assert put.status_code == 201, put.text
    dataset = client.get(f"/datasets/{name}", headers=admin_headers, timeout=60)
    assert dataset.status_code == 200, dataset.text
    assert dataset.json()["row_count"] == 200


def test_the_url_writes_that_one_blob_and_reads_nothing(client, admin_headers) -> None:
    name = f"big-{secrets.token_hex(3)}"
    url = upload_url(client, admin_headers, name, "a.csv").json()["url"]
    assert httpx.put(url, content=CSV, headers={"x-ms-blob-type": "BlockBlob"}).status_code == 201
    assert httpx.get(url).status_code == 403  # no read permission
    assert httpx.delete(url).status_code == 403
    other = url.replace("/a.csv?", "/b.csv?")
    assert httpx.put(other, content=CSV, headers={"x-ms-blob-type": "BlockBlob"}).status_code == 403


@pytest.mark.parametrize("file_name", ["../x.csv", "a/b.csv", "x.txt", "x.csv.exe", ".csv", ""])
def test_bad_file_names_are_refused(client, admin_headers, file_name: str) -> None:
    r = upload_url(client, admin_headers, "fine-name", file_name)
    assert r.status_code == 422, r.text


def test_bad_dataset_names_and_missing_scope_are_refused(client, admin_headers, make_user):
    assert upload_url(client, admin_headers, "UPPER", "a.csv").status_code == 422
    _, _, _, user = make_user(["user"])
    assert upload_url(client, user, "fine-name", "a.csv").status_code == 403
    assert (
        client.post("/datasets/fine-name/upload-url", json={"file_name": "a.csv"}).status_code
        == 401
    )
