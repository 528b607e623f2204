"""Helpers and fixtures shared by the e2e modules (which never import each other)."""

import io
import json
import secrets
import time

import httpx
import numpy as np
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login


def csv_of(frame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def put_dataset(client: httpx.Client, headers: dict, name: str, frame) -> None:
    r = client.put(
        f"/datasets/{name}", headers={**headers, "Content-Type": "text/csv"}, content=csv_of(frame)
    )
    assert r.status_code in (200, 201), r.text


def wait_for(client: httpx.Client, headers: dict, location: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(location, headers=headers)
        if r.status_code == 200:
            return r.json()
        assert r.status_code == 202, r.text
        assert r.headers["retry-after"]
        time.sleep(0.3)
    pytest.fail(f"job {location} did not finish: {r.text}")


def upload(
    client: httpx.Client,
    headers: dict,
    model: str,
    data: bytes,
    filename: str = "model.onnx",
    **fields,
) -> httpx.Response:
    form = {
        k: json.dumps(v) if isinstance(v, dict | list) else str(v)
        for k, v in fields.items()
        if k != "artifacts"
    }
    files = [("model_file", (filename, data, "application/octet-stream"))]
    files += [
        ("artifact_files", (fn, content, "application/octet-stream"))
        for fn, content in fields.get("artifacts", [])
    ]
    return client.post(f"/models/{model}/versions", headers=headers, data=form, files=files)


@pytest.fixture(scope="module")
def trained_rooms(host) -> tuple[str, int, object]:
    import pandas as pd

    client = httpx.Client(base_url=host.url, timeout=60)

    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    rng = np.random.default_rng(1)
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "room": f"r{i}",
                    "hour": rng.integers(0, 24, 150),
                    "co2": rng.normal(500 + 30 * i, 40, 150),
                }
            )
            for i in range(4)
        ],
        ignore_index=True,
    )
    name = f"rooms-{secrets.token_hex(3)}"
    put_dataset(client, headers, name, frame)
    client.put(
        f"/train/specs/{name}",
        headers=headers,
        json={
            "dataset": name,
            "algorithm": "isolation_forest",
            "partition_by": "room",
            "params": {"n_estimators": 20},
            "enabled": False,
        },
    )
    job = wait_for(
        client,
        headers,
        client.post("/train", headers=headers, json={"specs": [name]}).headers["location"],
    )
    assert job["status"] == "succeeded", job
    return name, job["results"][0]["version"], frame
