"""Helpers and fixtures shared by the e2e modules (which never import each other)."""

import io
import json
import secrets
import socket
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login

COLORS = ["red", "green", "blue"]


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


def train(client: httpx.Client, headers: dict, name: str, frame, **spec) -> int:
    """Upload ``frame`` as dataset ``name``, train spec ``name`` on it, return the version."""
    put_dataset(client, headers, name, frame)
    r = client.put(
        f"/train/specs/{name}", headers=headers, json={"dataset": name, "enabled": False, **spec}
    )
    assert r.status_code in (200, 201), r.text
    job = wait_for(
        client,
        headers,
        client.post("/train", headers=headers, json={"specs": [name]}).headers["location"],
    )
    assert job["status"] == "succeeded", job
    return job["results"][0]["version"]


# Rows of the predict-body tests (columnar, CSV): four normal features and a count.
FEATURES = ["f0", "f1", "f2", "f3", "n_items"]


def frame_of(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=FEATURES[:4])
    frame["n_items"] = rng.integers(0, 9, n)
    frame["label"] = np.where(frame.f0 + 0.5 * frame.f1 * frame.f2 > 0, "yes", "no")
    return frame


def records_of(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is None else v) for k, v in r.items()} for r in frame.to_dict("records")]


def without_ids(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("request_id", "prediction_id")}


def trained_forest(host, prefix: str, frame) -> str:
    """A 15-tree random forest on ``frame``'s ``label``, trained as an admin through the
    platform (served by its ONNX export); its model name."""
    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    name = f"{prefix}-{secrets.token_hex(3)}"
    params = {"n_estimators": 15}
    train(client, headers, name, frame, target="label", algorithm="random_forest", params=params)
    return name


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
    version = train(
        client,
        headers,
        name,
        frame,
        algorithm="isolation_forest",
        partition_by="room",
        params={"n_estimators": 20},
    )
    return name, version, frame


def customers(seed: int, n: int, shift_x: float = 0.0, mix=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    """x ~ N(10, 2), y ~ Exp(3), an hour, a colour; the label depends on x and colour."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(10 + shift_x, 2, n),
            "y": rng.exponential(3, n),
            "hour": rng.integers(0, 24, n),
            "color": rng.choice(COLORS, size=n, p=list(mix)),
        }
    )
    score = frame.x - 10 + np.where(frame.color == "red", 1.0, -0.5) + rng.normal(0, 1, n)
    frame["label"] = np.where(score > 0, "yes", "no")
    return frame


def rooms(seed: int, names: list[str], n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = [
        pd.DataFrame(
            {
                "room": room,
                "hour": rng.integers(0, 24, n),
                "co2": rng.normal(500 + 60 * int(room[1:]), 40, n),
            }
        )
        for room in names
    ]
    return pd.concat(parts, ignore_index=True)


def features_of(frame: pd.DataFrame, drop=("label",)) -> list[dict]:
    return frame.drop(columns=[c for c in drop if c in frame.columns]).to_dict("records")


def scoring_container():
    from shared.http import current_services as services

    return services().storage.container("scoring")


def scored_container():
    from shared.http import current_services as services

    return services().storage.container("scored")


def read_parquet(path: str):
    import pyarrow.parquet as pq

    container, blob = path.split("/", 1)
    assert container == "scored"
    return pq.read_table(io.BytesIO(scored_container().download_blob(blob).readall()))


def poll(client, headers, location: str, timeout: float = 240) -> tuple[dict, list[int]]:
    statuses = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get(location, headers=headers)
        statuses.append(r.status_code)
        if r.status_code == 200:
            return r.json(), statuses
        assert r.status_code == 202, r.text
        assert r.headers["retry-after"] and r.headers["location"] == location
        time.sleep(0.3)
    pytest.fail(f"scoring job {location} did not finish")


@pytest.fixture(scope="module")
def onnx_model() -> bytes:
    """An iris classifier (features f0..f3) as ONNX; test_registry has its own."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=1000).fit(X, y)
    return to_onnx(model, X[:1].astype("float32")).SerializeToString()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
