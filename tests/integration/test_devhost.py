"""devhost end to end: in-memory Azurite + LocalHost serving tests/fixtures/sample_app.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost import Azurite, HostConfig, LocalHost, load_app, start_azurite
from devhost.settings import load_local_settings

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "sample_app.py"
MAX_DEQUEUE = 3


def wait_for(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture(scope="module")
def azurite() -> Iterator[Azurite]:
    with start_azurite(in_memory=True) as instance:
        yield instance


@pytest.fixture(scope="module")
def sample() -> ModuleType:
    load_app(str(FIXTURE))
    return sys.modules["sample_app"]


@pytest.fixture(scope="module")
def host(azurite: Azurite, sample: ModuleType) -> Iterator[LocalHost]:
    config = HostConfig.from_json(
        {
            "extensions": {
                "http": {"routePrefix": ""},
                "queues": {
                    "maxDequeueCount": MAX_DEQUEUE,
                    "visibilityTimeout": "00:00:00",
                    "maxPollingInterval": "00:00:00.2",
                },
            }
        }
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AzureWebJobsStorage", azurite.connection_string)
        env.setenv("SAMPLE_TIMER_SCHEDULE", "* * * * * *")
        with LocalHost(sample.app, port=0, config=config, max_body_bytes=1024 * 1024) as local:
            yield local


@pytest.fixture
def client(host: LocalHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=10) as http_client:
        yield http_client


def producer(azurite: Azurite, name: str, encode: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if encode else None
    client = QueueClient.from_connection_string(
        azurite.connection_string, name, message_encode_policy=policy
    )
    with contextlib.suppress(ResourceExistsError):  # the poller may have created it
        client.create_queue()
    return client


def peek_all(azurite: Azurite, name: str) -> list[str]:
    client = QueueClient.from_connection_string(azurite.connection_string, name)
    try:
        return [m.content for m in client.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def test_route_params_query_and_content_type(client: httpx.Client) -> None:
    response = client.get("/models/res%20net/versions/3", params={"q": "x"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"name": "res net", "version": "3", "q": "x"}


def test_int_constraint_specificity_and_wrong_method_404(client: httpx.Client) -> None:
    assert client.get("/models/m/versions/abc").status_code == 404
    assert client.get("/nope").status_code == 404
    rejected = client.delete("/slow")
    assert rejected.status_code == 404  # as the Functions host answers a wrong method
    compare = client.post("/models/compare", content=b"12345")
    assert compare.text == "compare 5 bytes"
    assert compare.headers["x-handler"] == "compare"
    assert compare.headers["content-type"] == "text/plain; charset=utf-8"
    assert client.get("/models/compare").text == "model compare"


def test_async_handler_and_trailing_slash(client: httpx.Client) -> None:
    assert client.get("/HeartBeat/").status_code == 204


def test_slow_request_does_not_block_others(client: httpx.Client, host: LocalHost) -> None:
    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=host.url, timeout=10) as other:
        started = time.monotonic()
        slow = pool.submit(other.get, "/slow")
        time.sleep(0.2)
        fast_started = time.monotonic()
        assert client.get("/heartbeat").status_code == 204
        assert time.monotonic() - fast_started < 0.5
        assert not slow.done()
        assert slow.result().text == "slow done"
        assert time.monotonic() - started >= 2


def test_handler_exception_is_a_bare_500(client: httpx.Client) -> None:
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.content == b""


def test_keep_alive_serves_several_requests_on_one_connection(host: LocalHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=5)
    try:
        for _ in range(3):
            connection.request("POST", "/models/compare", body=b"abc")
            response = connection.getresponse()
            assert response.read() == b"compare 3 bytes"
            assert not response.will_close
    finally:
        connection.close()


def test_oversized_body_is_refused_before_reading(host: LocalHost) -> None:
    with socket.create_connection(("127.0.0.1", host.port), timeout=5) as sock:
        sock.sendall(
            b"POST /models/compare HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\npartial"
        )
        status_line = sock.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 413")


def test_chunked_request_body(host: LocalHost) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"ab"
        yield b"cde"

    with httpx.Client(base_url=host.url, timeout=10) as http_client:
        assert http_client.post("/models/compare", content=chunks()).text == "compare 5 bytes"


def test_timer_runs_on_its_schedule(host: LocalHost, sample: ModuleType) -> None:
    wait_for(lambda: len(sample.TIMER_RUNS) >= 1, timeout=3)
    assert sample.TIMER_RUNS[0] is False


def test_admin_endpoint_invokes_non_http_functions(
    client: httpx.Client, sample: ModuleType
) -> None:
    runs = len(sample.TIMER_RUNS)
    assert client.post("/admin/functions/tick").status_code == 202
    wait_for(lambda: len(sample.TIMER_RUNS) > runs, timeout=2)

    marker = f"admin-{uuid.uuid4()}"
    assert client.post("/admin/functions/Record_Job", json={"input": marker}).status_code == 202
    wait_for(lambda: any(r["body"] == marker for r in sample.RECORDED), timeout=2)

    assert client.post("/admin/functions/missing").status_code == 404
    assert client.post("/admin/functions/boom").status_code == 400


def test_queue_messages_are_base64_decoded_and_deleted(
    host: LocalHost, azurite: Azurite, sample: ModuleType
) -> None:
    marker = f"job-{uuid.uuid4()}"
    producer(azurite, "sample-jobs").send_message(marker)
    wait_for(lambda: any(r["body"] == marker for r in sample.RECORDED))
    assert next(r for r in sample.RECORDED if r["body"] == marker)["dequeue_count"] == 1
    wait_for(lambda: peek_all(azurite, "sample-jobs") == [])


def test_failing_message_lands_in_poison_after_max_dequeue_count(
    host: LocalHost, azurite: Azurite, sample: ModuleType
) -> None:
    marker = f"broken-{uuid.uuid4()}"
    producer(azurite, "sample-broken").send_message(marker)
    expected_poison = TextBase64EncodePolicy().encode(marker)
    wait_for(lambda: expected_poison in peek_all(azurite, "sample-broken-poison"))
    assert sample.FAILED_ATTEMPTS[-MAX_DEQUEUE:] == list(range(1, MAX_DEQUEUE + 1))
    assert peek_all(azurite, "sample-broken") == []


def test_message_that_is_not_base64_goes_to_poison(
    host: LocalHost, azurite: Azurite, sample: ModuleType
) -> None:
    raw = f"not base64 {uuid.uuid4()}!"
    producer(azurite, "sample-jobs", encode=False).send_message(raw)
    wait_for(lambda: raw in peek_all(azurite, "sample-jobs-poison"))
    assert all(r["body"] != raw for r in sample.RECORDED)


def test_poller_survives_a_storage_outage(
    host: LocalHost, azurite: Azurite, sample: ModuleType, client: httpx.Client
) -> None:
    azurite.stop()
    try:
        time.sleep(0.5)
        assert client.get("/heartbeat").status_code == 204
    finally:
        azurite.start()
    marker = f"after-outage-{uuid.uuid4()}"
    producer(azurite, "sample-jobs").send_message(marker)
    wait_for(lambda: any(r["body"] == marker for r in sample.RECORDED))


def test_local_settings_do_not_override_the_environment(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {"Values": {"A": "from-file", "B": "from-file", "S": "UseDevelopmentStorage=true"}}
        )
    )
    environ = {"A": "from-env"}
    load_local_settings(settings, environ)
    assert environ["A"] == "from-env"
    assert environ["B"] == "from-file"
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in environ["S"]


def test_host_json_defaults_and_overrides() -> None:
    defaults = HostConfig.from_json({})
    assert defaults.route_prefix == "api"
    assert defaults.queues.max_dequeue_count == 5
    assert defaults.queues.batch_size == 16
    assert defaults.queues.message_encoding == "base64"
    custom = HostConfig.from_json(
        {
            "functionTimeout": "00:10:00",
            "extensions": {
                "http": {"routePrefix": ""},
                "queues": {"visibilityTimeout": "00:00:30"},
            },
        }
    )
    assert custom.route_prefix == ""
    assert custom.function_timeout is not None and custom.function_timeout.total_seconds() == 600
    assert custom.queues.visibility_timeout.total_seconds() == 30


def test_cli_serves_the_app_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text(
        json.dumps(
            {
                "Values": {
                    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                    "SAMPLE_TIMER_SCHEDULE": "0 0 0 1 1 *",
                }
            }
        )
    )
    host_json = tmp_path / "host.json"
    host_json.write_text(json.dumps({"version": "2.0"}))
    env = {k: v for k, v in os.environ.items() if k not in ("AzureWebJobsStorage", "PORT")}
    command = [
        sys.executable,
        "-m",
        "devhost",
        "--app",
        str(FIXTURE),
        "--port",
        "0",
        "--settings",
        str(settings),
        "--host-json",
        str(host_json),
        "--azurite",
        str(tmp_path / "azurite"),
    ]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or []])
    reader.start()
    try:
        output: list[str] = []
        deadline = time.monotonic() + 30
        while not any("Listening on" in line for line in output):
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
        url = next(line for line in output if "Listening on" in line).split()[2]
        assert any("tick: timerTrigger (%SAMPLE_TIMER_SCHEDULE%)" in line for line in output)
        assert httpx.get(f"{url}/api/heartbeat", timeout=5).status_code == 204
        assert httpx.get(f"{url}/heartbeat", timeout=5).status_code == 404
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(5)
    assert (tmp_path / "azurite" / "__azurite_db_queue__.json").exists()
