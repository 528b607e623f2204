"""The dashboard over HTTP: the page and its headers, the plots tree and the plots, and
the whole thing driven in a real headless Chromium (playwright-core, the system browser).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.e2e.conftest import put_dataset, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
DRIVER = ROOT / "tests" / "e2e" / "dashboard_driver.mjs"
OUTPUT = ROOT / "test-output" / "dashboard"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Trained:
    classifier: str
    rooms: str
    headers: dict[str, str]
    rooms_version: int
    job_id: str


def rooms_frame():
    """Sensor rows of four rooms with a timestamp, and one room too small to train."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    frames = []
    for i in range(5):
        n = 96 if i < 4 else 12
        co2 = rng.normal(550 + 40 * i, 30, n)
        co2[n // 2] = 1800  # one obvious event per room
        frames.append(
            pd.DataFrame(
                {
                    "room": f"room-{i + 1:02d}",
                    "at": pd.date_range("2026-11-01", periods=n, freq="h", tz="UTC"),
                    "co2": co2,
                    "temperature": rng.normal(21, 1, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def trained(host: object) -> Iterator[Trained]:
    """One classifier and one partitioned anomaly model, trained through the API."""
    from sklearn.datasets import load_iris

    with httpx.Client(base_url=host.url, timeout=60) as client:  # type: ignore[attr-defined]
        headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
        suffix = secrets.token_hex(3)
        iris = load_iris(as_frame=True).frame
        iris.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
        names = {"classifier": f"iris-{suffix}", "rooms": f"rooms-{suffix}"}
        put_dataset(client, headers, names["classifier"], iris)
        put_dataset(client, headers, names["rooms"], rooms_frame())
        specs = {
            names["classifier"]: {
                "dataset": names["classifier"],
                "target": "species",
                "algorithm": "random_forest",
                "params": {"n_estimators": 15},
                "enabled": False,
            },
            names["rooms"]: {
                "dataset": names["rooms"],
                "algorithm": "isolation_forest",
                "features": ["co2", "temperature"],
                "params": {"n_estimators": 20},
                "partition_by": "room",
                "min_rows": 30,
                "enabled": False,
            },
        }
        for name, spec in specs.items():
            r = client.put(f"/train/specs/{name}", headers=headers, json=spec)
            assert r.status_code == 201, r.text
        r = client.post("/train", headers=headers, json={"specs": list(specs)})
        assert r.status_code == 202, r.text
        job = wait_for(client, headers, r.headers["location"], timeout=120)
        assert job["status"] == "succeeded", job
        versions = {u["model"]: u["version"] for u in job["results"] if u.get("version")}
        # Some logged predictions, so the drift and A/B panels have something to show.
        records = iris.drop(columns="species").sample(40, random_state=1).to_dict("records")
        r = client.post(
            f"/predict/{names['classifier']}", headers=headers, json={"records": records}
        )
        assert r.status_code == 200, r.text
        room = rooms_frame().query("room == 'room-02'")[["co2", "temperature"]].head(40)
        room["co2"] += 150  # drifted
        r = client.post(
            f"/predict/{names['rooms']}",
            headers=headers,
            json={"records": room.to_dict("records"), "partition": "room-02"},
        )
        assert r.status_code == 200, r.text
        yield Trained(
            names["classifier"], names["rooms"], headers, versions[names["rooms"]], job["job_id"]
        )


def test_the_page_is_public_static_and_locked_down(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    # No inline script anywhere: every <script> has a src on this origin.
    assert r.text.count("<script") == r.text.count('<script src="/dashboard/')
    script = client.get("/dashboard/app.js").text
    assert "localStorage." not in script and "sessionStorage." not in script
    for asset, kind in (("app.js", "javascript"), ("charts.js", "javascript"), ("app.css", "css")):
        r = client.get(f"/dashboard/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert r.headers["x-content-type-options"] == "nosniff"
    for bad in ("/dashboard/index.html", "/dashboard/..%2Fplots.py", "/dashboard/nope.js"):
        assert client.get(bad).status_code == 404
    # "/" matches only the root: unknown paths stay 404s.
    assert client.get("/no-such-page").status_code == 404


def test_the_root_is_in_the_openapi_document(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/"]
    assert paths["/plots_structure"]["get"]["security"]
    assert "/models/{name}/versions/{version}/plots/{path}" in paths


def test_session_says_what_the_user_may_do(client: httpx.Client, make_user) -> None:
    assert client.get("/dashboard/session").status_code == 401
    _, username, _, headers = make_user(["user"])
    body = client.get("/dashboard/session", headers=headers).json()
    assert body["username"] == username and body["is_admin"] is False
    assert "models:read" in body["scopes"] and "models:write" not in body["scopes"]


def test_plots_tree_lists_version_and_partition_plots(client: httpx.Client, trained) -> None:
    assert client.get("/plots_structure").status_code == 401
    r = client.get("/plots_structure", headers=trained.headers)
    assert r.status_code == 200
    listed = {m["name"] for m in r.json()["models"]}
    assert {trained.classifier, trained.rooms} <= listed

    tree = client.get(
        "/plots_structure", params={"model": trained.classifier}, headers=trained.headers
    ).json()
    [model] = tree["models"]
    [version] = model["versions"]
    assert {p["name"] for p in version["plots"]} == {"feature_importance", "confusion_matrix"}
    assert version["partitions"] == []

    tree = client.get(
        "/plots_structure", params={"model": trained.rooms}, headers=trained.headers
    ).json()
    [version] = tree["models"][0]["versions"]
    rooms = {p["partition"]: p for p in version["partitions"]}
    assert set(rooms) == {"room-01", "room-02", "room-03", "room-04"}  # room-05 was skipped
    room = rooms["room-02"]
    assert {p["name"] for p in room["plots"]} == {
        "anomaly_score_histogram",
        "anomaly_scores_over_time",
    }
    assert 0 < room["metrics"]["anomaly_rate"] < 0.5 and room["n_rows"] == 96
    for plot in room["plots"]:
        assert plot["url"].startswith(f"/models/{trained.rooms}/versions/{version['version']}/")


def test_each_plot_is_served_as_png_to_readers_only(
    client: httpx.Client, trained, make_user
) -> None:
    tree = client.get(
        "/plots_structure", params={"model": trained.rooms}, headers=trained.headers
    ).json()
    url = tree["models"][0]["versions"][0]["partitions"][0]["plots"][0]["url"]
    assert client.get(url).status_code == 401
    *_, reader = make_user(["user"])
    r = client.get(url, headers=reader)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(PNG) and r.headers["x-content-type-options"] == "nosniff"
    from PIL import Image

    assert Image.open(io.BytesIO(r.content)).size == (576, 326)

    base = f"/models/{trained.classifier}/versions/1/plots"
    assert client.get(f"{base}/confusion_matrix.png", headers=reader).status_code == 200
    for bad in ("CONFUSION.png", "confusion_matrix.svg", "..%2F..%2Fmodel.skops", "a/b/c.png"):
        r = client.get(f"{base}/{bad}", headers=reader)
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.get(f"{base}/residuals.png", headers=reader)
    assert r.status_code == 404 and r.json()["code"] == "PLOT_NOT_FOUND"
    r = client.get(f"{base}/0123456789abcdef/confusion_matrix.png", headers=reader)
    assert r.status_code == 404
    assert client.get("/models/nope/versions/1/plots/x.png", headers=reader).status_code == 404


def test_a_rooms_plots_are_drawn_from_its_stored_numbers(client: httpx.Client, trained) -> None:
    """A partition stores the numbers of its plots (plots.json, hashed in the manifest), not
    PNGs: drawing 2 PNGs per room was 40% of a many-room job. The PNG served is the one
    those numbers draw; numbers changed in storage are refused, not drawn."""
    from shared.http import current_services
    from shared.ml.plots import draw_plot
    from shared.registry.files import find_file

    registry = current_services().model_registry
    info = registry.get_version(trained.rooms, trained.rooms_version)
    manifest = client.get(
        f"/models/{trained.rooms}/versions/{trained.rooms_version}/download",
        headers=trained.headers,
    ).json()
    entry = manifest["partitions"]["room-02"]
    key = entry["key"]
    assert entry["plot_data"] == f"partitions/{key}/plots.json"
    assert entry["plot_data"] in manifest["files"]
    assert not [f for f in manifest["files"] if f.endswith(".png")]  # nothing drawn yet
    stored = find_file(info, entry["plot_data"], manifest)
    numbers = json.loads(registry.read_file(stored))
    assert set(numbers) == {"anomaly_score_histogram", "anomaly_scores_over_time"}
    assert sum(numbers["anomaly_score_histogram"]["counts"]) == 96

    url = f"/models/{trained.rooms}/versions/{trained.rooms_version}/plots/{key}"
    for name, data in numbers.items():
        r = client.get(f"{url}/{name}.png", headers=trained.headers)
        assert r.status_code == 200 and r.content == draw_plot(name, data)
    r = client.get(f"{url}/confusion_matrix.png", headers=trained.headers)
    assert r.status_code == 404  # only the plots the numbers hold

    other = manifest["partitions"]["room-03"]
    # The room's numbers lie in its training unit's pack: one byte of them changed there.
    theirs = find_file(info, other["plot_data"], manifest)
    assert theirs.pack is not None and theirs.pack.startswith(f"models/{trained.rooms}/")
    blob = theirs.pack.split("/", 1)[1]
    original = registry.container.download_blob(blob).readall()
    # (stored compressed when that pays: then its range is its stored length)
    at = theirs.offset + (theirs.stored_bytes or theirs.size_bytes) // 2
    tampered = original[:at] + bytes([original[at] ^ 1]) + original[at + 1 :]
    registry.container.upload_blob(blob, tampered, overwrite=True)
    try:
        r = client.get(
            f"/models/{trained.rooms}/versions/{trained.rooms_version}/plots/{other['key']}"
            "/anomaly_score_histogram.png",
            headers=trained.headers,
        )
        assert r.status_code == 409 and r.json()["code"] == "MODEL_INTEGRITY_FAILED", r.text
    finally:
        registry.container.upload_blob(blob, original, overwrite=True)


def test_the_model_file_is_not_reachable_as_a_plot(client: httpx.Client, trained) -> None:
    base = f"/models/{trained.classifier}/versions/1/plots"
    for path in ("model.png", "..%2Fmodel.skops", "%2E%2E/model.png"):
        assert client.get(f"{base}/{path}", headers=trained.headers).status_code in (404, 422)


# --- the browser ------------------------------------------------------------------------------


def browser_missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    if not (ROOT / "node_modules" / "playwright-core").is_dir() or not shutil.which("node"):
        return "playwright-core is not installed (npm ci installs it from package-lock.json)"
    return None


def test_dashboard_in_headless_chromium(host: object, trained) -> None:
    """Sign in, read a model's metrics and plot, train and watch the job finish, open a
    partitioned model and a room's plot; screenshots in test-output/dashboard/."""
    missing = browser_missing()
    if missing:
        pytest.skip(missing)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "BASE_URL": host.url,  # type: ignore[attr-defined]
        "DASH_USER": ADMIN,
        "DASH_PASSWORD": ADMIN_PASSWORD,
        "CLASSIFIER": trained.classifier,
        "PARTITIONED": trained.rooms,
        "ROOM": "room-02",
        "FIRST_JOB": trained.job_id,
        "CHROMIUM_PATH": CHROMIUM,
        "OUTPUT_DIR": str(OUTPUT),
    }
    try:
        done = subprocess.run(
            ["node", str(DRIVER)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=150,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the browser run hung:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    for shot in ("1-models", "2-model", "3-job", "4-partition", "6-partitioned-job"):
        assert (OUTPUT / f"{shot}.png").read_bytes().startswith(PNG)


def test_a_failed_partition_keeps_its_previous_plots(client: httpx.Client, admin_headers) -> None:
    import numpy as np

    frame = rooms_frame().query("room != 'room-05'").copy()
    frame["busy"] = np.where(np.arange(len(frame)) % 3 == 0, "yes", "no")
    name = f"busy-{secrets.token_hex(3)}"
    put_dataset(client, admin_headers, name, frame)
    spec = {
        "dataset": name,
        "target": "busy",
        "features": ["co2", "temperature"],
        "algorithm": "logistic_regression",
        "partition_by": "room",
        "min_rows": 30,
        "enabled": False,
    }
    assert client.put(f"/train/specs/{name}", headers=admin_headers, json=spec).status_code == 201

    def train() -> dict:
        r = client.post("/train", headers=admin_headers, json={"specs": [name]})
        return wait_for(client, admin_headers, r.headers["location"], timeout=120)

    assert train()["status"] == "succeeded"
    frame.loc[frame.room == "room-03", "busy"] = "no"  # one class: room-03 cannot train now
    put_dataset(client, admin_headers, name, frame)
    assert train()["status"] == "partially_failed"

    tree = client.get("/plots_structure", params={"model": name}, headers=admin_headers).json()
    newest = tree["models"][0]["versions"][0]
    assert newest["version"] == 2
    rooms = {p["partition"]: p for p in newest["partitions"]}
    assert rooms["room-03"]["carried_over_from"] == 1
    assert rooms["room-01"]["carried_over_from"] is None
    for room in ("room-01", "room-03"):
        names = {p["name"] for p in rooms[room]["plots"]}
        assert names == {"feature_importance", "confusion_matrix"}
        for plot in rooms[room]["plots"]:
            r = client.get(plot["url"], headers=admin_headers)
            assert r.status_code == 200 and r.content.startswith(PNG)
    report = client.get(f"/models/{name}/versions/2/verify", headers=admin_headers).json()
    assert report["status"] == "valid"
