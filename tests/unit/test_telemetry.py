"""Telemetry: nothing imported or started without APPLICATIONINSIGHTS_CONNECTION_STRING;
with it, traces and logs reach the ingestion endpoint carrying the request id.

Each case runs in a fresh process (the OpenTelemetry providers are process-global). The
"ingestion endpoint" is a loopback HTTP server: nothing leaves the machine, and no
credential is used (no AAD authentication string is set here)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_MODULES = ("opentelemetry", "azure.monitor", "azure.identity")

CALL_HEARTBEAT = """
import json, sys, threading
import azure.functions as func
import function_app
from shared import telemetry
fn = {f.get_function_name(): f for f in function_app.app.get_functions()}["heartbeat"]
req = func.HttpRequest("GET", "http://localhost/heartbeat", body=b"",
                       headers={"X-Request-ID": "rid-telemetry-1"})
import logging
logging.getLogger("ml_platform").setLevel("INFO")  # as configure_logging does with LOG_LEVEL
resp = fn.get_user_function()(req)
telemetry.flush()
print(json.dumps({
    "status": resp.status_code,
    "active": telemetry.is_active(),
    "modules": sorted({m.split(".")[0] + ("." + m.split(".")[1] if m.startswith("azure.") and
                       "." in m else "") for m in sys.modules
                       if m.startswith(("opentelemetry", "azure.monitor", "azure.identity"))}),
    "threads": sorted(t.name for t in threading.enumerate()),
}))
"""


def run(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CALL_HEARTBEAT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "LOCAL_SETTINGS_PATH": "/nonexistent", **env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_a_connection_string_nothing_is_imported_or_started() -> None:
    result = run({})
    assert result["status"] == 200
    assert result["active"] is False
    assert result["modules"] == []
    assert not [t for t in result["threads"] if "export" in t.lower() or "otel" in t.lower()]


class _Ingestion(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        try:
            items = json.loads(body)
        except ValueError:
            items = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        _Ingestion.received.extend(items if isinstance(items, list) else [items])
        reply = json.dumps({"itemsReceived": 1, "itemsAccepted": 1, "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def ingestion() -> Iterator[str]:
    _Ingestion.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ingestion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_with_a_connection_string_requests_are_exported_with_their_request_id(
    ingestion: str, tmp_path: Path
) -> None:
    key = "00000000-0000-0000-0000-000000000000"
    result = run(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": (
                f"InstrumentationKey={key};IngestionEndpoint={ingestion}"
            ),
            # Offline and loopback-only: no statsbeat to Microsoft, no cloud resource probes.
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
            "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
            # The distro's default samples at most 5 traces/s with a warm-up; a single
            # request is sampled deterministically only with always_on.
            "OTEL_TRACES_SAMPLER": "always_on",
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
        }
    )
    assert result["status"] == 200 and result["active"] is True
    assert "opentelemetry" in result["modules"]
    requests = [
        item
        for item in _Ingestion.received
        if item.get("data", {}).get("baseType") == "RequestData"
    ]
    assert requests, [i.get("data", {}).get("baseType") for i in _Ingestion.received]
    data = requests[0]["data"]["baseData"]
    assert data["name"] == "GET /heartbeat"
    assert data["responseCode"] == "200"
    assert data["properties"]["ml.request_id"] == "rid-telemetry-1"
    # The request's log line is exported too, with the same request id and trace.
    logs = [i for i in _Ingestion.received if i.get("data", {}).get("baseType") == "MessageData"]
    line = next(i for i in logs if i["data"]["baseData"]["message"].startswith("GET heartbeat"))
    assert line["data"]["baseData"]["properties"]["request_id"] == "rid-telemetry-1"
    assert line["tags"]["ai.operation.id"] == requests[0]["tags"]["ai.operation.id"]
