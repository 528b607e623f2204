"""The Data Factory pipelines in docs/adf replayed against the local host, byte for byte:
the training pipeline (Key Vault password, form login, POST /train with the async
pattern, the If Condition that fails the run on a failed job) and the earlier system's
calls (Lookup POST /train with a bare Bearer header, POST /predict/, GET /heartbeat/).

A host of its own (own Azurite, own process): "no spec enabled" must hold, and the
pre-defined service user comes from PREDEFINED_USERS as it does in Azure."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.adf_replay import Context, evaluate, lookup_http, web_activity

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
ADF = ROOT / "docs" / "adf"
ADF_USER, ADF_PASSWORD = "adf-service", "adf-" + secrets.token_urlsafe(16)
ADMIN, ADMIN_PASSWORD = "ops-admin", "admin-" + secrets.token_urlsafe(16)


def pipeline(name: str) -> dict:
    return json.loads((ADF / name).read_text(encoding="utf-8"))["properties"]


def activity(props: dict, name: str) -> dict:
    return next(a for a in props["activities"] if a["name"] == name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fresh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from devhost.azurite import start_azurite

    tmp = tmp_path_factory.mktemp("adf")
    azurite = start_azurite(in_memory=True)
    port = free_port()
    users = [
        {"username": ADMIN, "roles": ["admin"], "password_secret": "ops-admin-password"},
        {
            "username": ADF_USER,
            "roles": ["train-service"],
            "password_secret": "adf-service-password",
        },
    ]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BOOTSTRAP_ADMIN")},
        "STORAGE_CONNECTION_STRING": azurite.connection_string,
        "AzureWebJobsStorage": azurite.connection_string,
        "LOCAL_SETTINGS_PATH": str(tmp / "absent.json"),
        "GIT_METADATA": "adf-replay",
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "PREDEFINED_USERS": json.dumps(users),
        # EnvironmentSecrets: secret "adf-service-password" is env ADF_SERVICE_PASSWORD.
        "ADF_SERVICE_PASSWORD": ADF_PASSWORD,
        "OPS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LOG_LEVEL": "WARNING",
    }
    log = (tmp / "devhost.log").open("w")
    proc = subprocess.Popen(
        # One process (HTTP and queue workers), so its /metrics also counts the training.
        [sys.executable, "-m", "devhost", "--port", str(port), "--settings",
         str(tmp / "absent.json"), "--no-timers", "--role", "single"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("devhost did not start:\n" + (tmp / "devhost.log").read_text())
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        azurite.stop()


def train_context(base_url: str) -> Context:
    params = {
        k: v["defaultValue"] for k, v in pipeline("train_pipeline.json")["parameters"].items()
    }
    params["baseUrl"] = base_url
    ctx = Context(params, run_id=f"run-{secrets.token_hex(4)}")
    # GetPassword is a Key Vault read with the factory's identity: answered here, as the
    # vault would, instead of being sent.
    get_password = activity(pipeline("train_pipeline.json"), "GetPassword")
    url = evaluate(get_password["typeProperties"]["url"], ctx)
    assert url == "https://kv-example.vault.azure.net/secrets/adf-service-password?api-version=7.4"
    assert get_password["typeProperties"]["authentication"] == {
        "type": "MSI",
        "resource": "https://vault.azure.net",
    }
    ctx.outputs["GetPassword"] = {"value": ADF_PASSWORD}
    return ctx


def run_train_pipeline(base_url: str) -> tuple[Context, list]:
    props = pipeline("train_pipeline.json")
    ctx = train_context(base_url)
    (login,) = web_activity(activity(props, "Login"), ctx, base_url)
    assert login.headers == [("Content-Type", "application/x-www-form-urlencoded")]
    assert login.body is not None and login.body.startswith(b"username=adf-service&password=")
    assert ctx.outputs["Login"]["token_type"] == "bearer"
    train = web_activity(activity(props, "Train"), ctx, base_url, poll_limit=240)
    return ctx, train


def if_failed(ctx: Context) -> tuple[bool, str]:
    condition = activity(pipeline("train_pipeline.json"), "FailWhenJobFailed")
    fired = evaluate(condition["typeProperties"]["expression"], ctx)
    (fail,) = condition["typeProperties"]["ifTrueActivities"]
    assert fail["type"] == "Fail"
    message = evaluate(fail["typeProperties"]["message"], ctx) if fired else ""
    return fired, message


def admin_headers(base_url: str) -> dict[str, str]:
    r = httpx.post(
        base_url + "/auth/jwt/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_legacy_calls_work_on_a_fresh_install(fresh_host: str) -> None:
    props = pipeline("legacy_calls.json")
    token = httpx.post(
        fresh_host + "/auth/jwt/login", data={"username": ADF_USER, "password": ADF_PASSWORD}
    ).json()["access_token"]
    ctx = Context({"baseUrl": fresh_host, "token": token})

    (heartbeat,) = web_activity(activity(props, "Heartbeat"), ctx, fresh_host)
    assert heartbeat.path == "/heartbeat/" and heartbeat.headers == []
    assert heartbeat.json() == {"version": "adf-replay"}

    lookup = lookup_http(activity(props, "LookupTrain"), ctx, fresh_host)
    # Exactly the old call: POST /train, a Bearer header, no body, no Content-Type.
    assert (lookup.method, lookup.path, lookup.body) == ("POST", "/train", None)
    assert lookup.headers == [("Authorization", f"Bearer {token}")]
    assert lookup.status == 200
    assert lookup.response_headers["content-type"].startswith("application/json")
    assert lookup.json()["status"] == "skipped" and lookup.json()["job_id"] is None


def test_legacy_predict_call_on_a_fresh_install(fresh_host: str) -> None:
    headers = admin_headers(fresh_host)
    ctx = Context({"baseUrl": fresh_host, "token": headers["Authorization"].split()[1]})
    (predict,) = web_activity(activity(pipeline("legacy_calls.json"), "Predict"), ctx, fresh_host)
    assert (predict.method, predict.path) == ("POST", "/predict/")
    assert predict.status == 200 and predict.json()["status"] == "skipped"


def test_train_pipeline_with_no_enabled_spec_succeeds_without_a_job(fresh_host: str) -> None:
    ctx, train = run_train_pipeline(fresh_host)
    assert [s.status for s in train] == [200]
    assert train[0].headers[0] == ("Content-Type", "application/json")
    assert train[0].body == b"{}"
    assert if_failed(ctx) == (False, "")


def test_train_pipeline_fails_the_run_when_the_job_fails(fresh_host: str) -> None:
    headers = admin_headers(fresh_host)
    name = f"one-class-{secrets.token_hex(3)}"
    rows = "\n".join(f"{i},{i % 7},no" for i in range(80))
    r = httpx.put(
        f"{fresh_host}/datasets/{name}",
        headers={**headers, "Content-Type": "text/csv"},
        content=f"x,y,label\n{rows}\n".encode(),
        timeout=120,
    )
    assert r.status_code == 201, r.text
    spec = {"dataset": name, "target": "label", "algorithm": "logistic_regression"}
    r = httpx.put(f"{fresh_host}/train/specs/{name}", headers=headers, json=spec, timeout=120)
    assert r.status_code == 201, r.text
    try:
        ctx, train = run_train_pipeline(fresh_host)
    finally:
        httpx.delete(f"{fresh_host}/train/specs/{name}", headers=headers)
    assert train[0].status == 202 and train[-1].status == 200
    assert all(s.method == "GET" for s in train[1:])
    assert ctx.outputs["Train"]["status"] == "failed"
    fired, message = if_failed(ctx)
    assert fired and ctx.outputs["Train"]["job_id"] in message
    # The failed unit is counted in this instance's metrics, with its duration.
    text = httpx.get(f"{fresh_host}/metrics", headers=headers).text
    assert 'ml_training_units_total{outcome="failed"} 1.0' in text
    assert 'ml_training_unit_duration_seconds_count{outcome="failed"} 1.0' in text
