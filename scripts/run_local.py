"""`make run`: Azurite + the local Functions host, then demo data, then wait for Ctrl-C.

The host runs as a child process (`python -m devhost --azurite .azurite`); once it
answers, the demo admin trains a small demo model through the platform's own HTTP API
(idempotent: an existing demo model is left alone) so a newcomer can predict at once.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = "demo-iris"
EXAMPLE = json.dumps(
    {
        "records": [
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
        ]
    },
    separators=(",", ":"),
)


def settings_value(name: str, default: str) -> str:
    try:
        values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    except (OSError, ValueError, KeyError):
        values = {}
    return os.environ.get(name) or values.get(name) or default


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the local host exited with code {proc.returncode}")
        try:
            if httpx.get(f"{url}/heartbeat", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit("the local host did not answer within 2 minutes")


class Retry(Exception):
    """A storage hiccup or a host restart: try the seeding again later."""


def seed_with_retries(
    make_client: Callable[[], httpx.Client],
    username: str,
    password: str,
    stopped: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    max_backoff: float = 30.0,
) -> bool:
    """Seed the demo until it is done (True) or we are told to stop (False); a timeout,
    a refused connection or a 5xx never ends the supervisor, it waits and tries again."""
    backoff = 1.0
    while not stopped():
        try:
            with make_client() as client:
                seed_demo(client, username, password)
            return True
        except (httpx.TransportError, Retry) as exc:
            print(
                f"demo data: {type(exc).__name__}: {exc}; retrying in {backoff:.0f} s", flush=True
            )
        sleep(backoff)
        backoff = min(backoff * 2, max_backoff)
    return False


def _ok(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 500 or response.status_code == 429:
        raise Retry(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}"
        )
    response.raise_for_status()
    return response


def seed_demo(client: httpx.Client, username: str, password: str) -> None:
    """Train `demo-iris` (iris flowers, random forest) unless it exists."""
    from sklearn.datasets import load_iris

    login = client.post("/auth/jwt/login", data={"username": username, "password": password})
    if login.status_code >= 500:
        _ok(login)
    if login.status_code != 200:
        print(f"demo data skipped: could not sign in as {username} ({login.status_code})")
        return
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    existing = client.get(f"/models/{DEMO_MODEL}", headers=headers)
    if existing.status_code == 200:
        return
    if existing.status_code != 404:
        _ok(existing)
    frame = load_iris(as_frame=True).frame
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width", "species"]
    frame["species"] = frame["species"].map(dict(enumerate(["setosa", "versicolor", "virginica"])))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    _ok(
        client.put(
            f"/datasets/{DEMO_MODEL}",
            headers={**headers, "Content-Type": "text/csv"},
            content=buffer.getvalue().encode(),
        )
    )
    spec = client.put(
        f"/train/specs/{DEMO_MODEL}",
        headers=headers,
        json={
            "dataset": DEMO_MODEL,
            "target": "species",
            "algorithm": "random_forest",
            "params": {"n_estimators": 50},
            "min_rows": 10,
            "enabled": False,
        },
    )
    _ok(spec)
    # One key for the demo's job: a retried seeding does not start a second one.
    started = _ok(
        client.post(
            "/train",
            headers={**headers, "Idempotency-Key": f"seed-{DEMO_MODEL}"},
            json={"specs": [DEMO_MODEL]},
        )
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(started.headers["location"], headers=headers)
        if job.status_code >= 500:
            _ok(job)
        if job.status_code == 200:
            print(f"demo model trained: {DEMO_MODEL} ({job.json()['status']})")
            return
        time.sleep(0.5)
    print("demo training still running; check GET /train/jobs")


def main() -> int:
    port = int(os.environ.get("PORT", "7071"))
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "devhost", "--azurite", ".azurite", "--port", str(port)],
        cwd=ROOT,
    )
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        wait_until_up(url, proc)
        user = settings_value("BOOTSTRAP_ADMIN_USERNAME", "admin")
        password = settings_value("BOOTSTRAP_ADMIN_PASSWORD", "")
        seed_with_retries(
            lambda: httpx.Client(base_url=url, timeout=60),
            user,
            password,
            stopped=lambda: stop["now"] or proc.poll() is not None,
        )
        print(
            f"""
Ready on {url}  (Ctrl-C stops the host and Azurite)
  docs:    {url}/docs        demo admin: {user} / (BOOTSTRAP_ADMIN_PASSWORD in local.settings.json)
  login:   curl -s -X POST {url}/auth/jwt/login -d 'username={user}&password=...'
  predict: curl -s -X POST {url}/predict/{DEMO_MODEL} -H "Authorization: Bearer $TOKEN" \\
             -H 'Content-Type: application/json' \\
             -d '{EXAMPLE}'
""",
            flush=True,
        )
        while not stop["now"] and proc.poll() is None:
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
