"""Reports over HTTP: a per-room anomaly model scored in batch, then reported per room,
checked against the scored output itself."""

from __future__ import annotations

import io
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.conftest import poll, put_dataset, read_parquet, scoring_container, wait_for

pytestmark = pytest.mark.e2e
ROOMS = ("r0", "r1", "r2")


def readings(n: int, seed: int, spikes: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "reading_id": np.arange(n, dtype=np.int64),
            "room": rng.choice(list(ROOMS), n),
            "co2": rng.normal(500, 30, n).round(1),
            "temp": rng.normal(21, 0.5, n).round(2),
        }
    )
    if spikes:  # outside every room's training range in both features
        frame.loc[frame.index[:spikes], ["co2", "temp"]] = (900.0, 30.0)
    return frame


@pytest.fixture(scope="module")
def scored(host) -> dict:
    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    name = f"rep-{secrets.token_hex(3)}"
    put_dataset(client, headers, name, readings(900, seed=1).drop(columns="reading_id"))
    spec = {
        "dataset": name,
        "algorithm": "isolation_forest",
        "features": ["co2", "temp"],
        "partition_by": "room",
        "params": {"n_estimators": 20, "contamination": 0.01},
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=headers, json=spec).status_code == 201
    r = client.post("/train", headers=headers, json={"specs": [name]})
    job = wait_for(client, headers, r.headers["location"])
    assert job["status"] == "succeeded", job
    frame = readings(3_000, seed=2, spikes=30)
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    scoring_container().upload_blob(f"{name}/batch.parquet", buffer.getvalue(), overwrite=True)
    r = client.post("/predict", headers=headers, json={"model": name})
    assert r.status_code == 202, r.text
    done, _ = poll(client, headers, r.headers["location"])
    assert done["status"] == "succeeded", done
    output = read_parquet(done["outputs"][0]).to_pandas()
    return {"name": name, "output": output, "job": done}


def test_report_counts_each_rooms_anomalies_from_the_scored_output(
    client, admin_headers, scored
) -> None:
    name, output = scored["name"], scored["output"]
    r = client.post("/reports", headers=admin_headers, json={"model": name, "top": 5})
    assert r.status_code == 201, r.text
    report = r.json()
    assert r.headers["location"] == f"/reports/{report['id']}"
    assert report["rows"] == len(output) == 3_000
    assert report["versions"] == sorted(output["model_version"].unique().tolist())
    by_room = {p["partition"]: p for p in report["partitions"]}
    assert set(by_room) == set(ROOMS)
    for room, part in by_room.items():
        rows = output[output["room"] == room]
        anomalies = rows[rows["prediction"] == -1]
        assert part["rows"] == len(rows)
        assert part["anomalies"] == len(anomalies) > 0
        assert part["anomaly_rate"] == pytest.approx(len(anomalies) / len(rows))
        expected = anomalies.sort_values("score", kind="stable").head(5)
        assert [t["keys"]["reading_id"] for t in part["top_rows"]] == expected[
            "reading_id"
        ].tolist()
        assert all(t["prediction"] == -1 for t in part["top_rows"])
        assert part["drift"] is None and "No logged predictions" in part["drift_note"]

    assert client.get(f"/reports/{report['id']}", headers=admin_headers).json() == report
    listed = client.get("/reports", headers=admin_headers, params={"model": name}).json()
    assert [item["id"] for item in listed["items"]] == [report["id"]]


def test_report_of_one_room_with_logged_drift_as_html(client, admin_headers, scored) -> None:
    name = scored["name"]
    # Logged online predictions of room r1 with shifted CO2: the report's drift section.
    records = readings(200, seed=5).assign(co2=lambda f: f.co2 + 400)[["co2", "temp"]]
    r = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": records.to_dict("records"), "partition": "r1"},
    )
    assert r.status_code == 200, r.text
    body = {
        "model": name,
        "partition": "r1",
        "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    r = client.post("/reports", headers=admin_headers, json=body)
    assert r.status_code == 201, r.text
    report = r.json()
    assert [p["partition"] for p in report["partitions"]] == ["r1"]
    (r1,) = report["partitions"]
    assert r1["drift"]["partition"] == "r1" and "co2" in r1["drift"]["drifted_features"]
    page = client.get(f"/reports/{report['id']}", headers=admin_headers, params={"format": "html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text and f"Report: {name}" in page.text
    assert ">r1<" in page.text


def test_report_errors(client, admin_headers, scored, make_user) -> None:
    name = scored["name"]
    r = client.post("/reports", headers=admin_headers, json={"model": "no-such-model"})
    assert r.status_code == 404
    later, earlier = "2026-02-01T00:00:00Z", "2026-01-01T00:00:00Z"
    r = client.post(
        "/reports", headers=admin_headers, json={"model": name, "from": later, "to": earlier}
    )
    assert r.status_code == 422
    assert client.get("/reports/" + "0" * 32, headers=admin_headers).status_code == 404
    assert client.get("/reports/..%2fx", headers=admin_headers).status_code == 404
    r = client.get(f"/reports/{'0' * 32}", headers=admin_headers, params={"format": "pdf"})
    assert r.status_code == 422
    assert client.post("/reports", json={"model": name}).status_code == 401
    nobody = make_user([])[3]
    assert client.post("/reports", headers=nobody, json={"model": name}).status_code == 403
