"""function_app indexed the way the Python worker does, then checked against the worker's
binding rules and the Functions host's route rules. A violation here is an app that
deploys and then serves nothing (the host refuses to index it)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTTP_REQUEST = "azure.functions._http.HttpRequest"
HTTP_RESPONSE = "azure.functions._http.HttpResponse"
TRIGGER_PARAM = {
    "httpTrigger": {HTTP_REQUEST},
    "timerTrigger": {"azure.functions._abc.TimerRequest", "azure.functions.timer.TimerRequest"},
    "queueTrigger": {"azure.functions._queue.QueueMessage", "azure.functions.queue.QueueMessage"},
}
# Host-reserved route prefixes (the host's own admin API and runtime endpoints).
RESERVED = ("admin", "runtime")


def index(module: str = "function_app") -> list[dict]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "index_functions.py"), module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"PATH": "", "LOCAL_SETTINGS_PATH": "/nonexistent"},
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def functions() -> list[dict]:
    return index()


def test_the_app_indexes_with_only_triggers_the_host_supports(functions: list[dict]) -> None:
    kinds = Counter(f["trigger"]["type"] for f in functions)
    assert set(kinds) == {"httpTrigger", "timerTrigger", "queueTrigger"}
    # 68 HTTP, 2 timers, 4 queues when the issue was filed; features only add to them.
    assert kinds["httpTrigger"] >= 68 and kinds["timerTrigger"] >= 2 and kinds["queueTrigger"] >= 4


def test_function_names_are_unique_ignoring_case(functions: list[dict]) -> None:
    names = Counter(f["name"].lower() for f in functions)
    assert [n for n, c in names.items() if c > 1] == []
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,127}", f["name"]) for f in functions)


def test_binding_names_equal_parameter_names(functions: list[dict]) -> None:
    for f in functions:
        bound = {b["name"] for b in f["bindings"] if b["name"] != "$return"}
        params = set(f["params"]) - {"context"}
        assert bound == params, f["name"]


def test_trigger_parameters_have_the_types_the_worker_converts(functions: list[dict]) -> None:
    for f in functions:
        trigger = f["trigger"]
        assert f["params"][trigger["name"]] in TRIGGER_PARAM[trigger["type"]], f["name"]


def test_http_functions_take_http_request_and_return_http_response(functions: list[dict]) -> None:
    for f in functions:
        if f["trigger"]["type"] != "httpTrigger":
            assert f["returns"] in ("builtins.NoneType", ""), f["name"]
            continue
        assert f["returns"] == HTTP_RESPONSE, f["name"]
        assert any(b["type"] == "http" and b["name"] == "$return" for b in f["bindings"])
        assert f["trigger"].get("methods"), f"{f['name']} must name its methods"


def normalized(route: str) -> str:
    """Parameter names do not tell routes apart for the host; constraints do."""
    return re.sub(r"\{\*?[A-Za-z0-9_]+(\??)", r"{\1", route.strip("/").lower())


def test_no_route_uses_a_prefix_the_host_reserves(functions: list[dict]) -> None:
    for f in functions:
        route = (f["trigger"].get("route") or f["name"]).strip("/").lower()
        first = route.split("/", 1)[0]
        assert not first.startswith(RESERVED), f["name"]


def test_no_two_functions_share_a_route_and_method(functions: list[dict]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for f in functions:
        if f["trigger"]["type"] != "httpTrigger":
            continue
        route = normalized(f["trigger"].get("route") or f["name"])
        for method in f["trigger"]["methods"]:
            key = (route, method.upper())
            assert key not in seen, f"{f['name']} and {seen.get(key)} both answer {key}"
            seen[key] = f["name"]


def test_the_checks_catch_a_broken_app(tmp_path: Path) -> None:
    """The rules above would fail on the defects they are meant to catch."""
    (tmp_path / "broken_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='admin/x', methods=['GET'])\n"
        "def one(request: func.HttpRequest) -> str:\n"
        "    return ''\n"
        "@app.route(route='models/{a}', methods=['GET'])\n"
        "def two(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse()\n"
        "@app.route(route='models/{b}', methods=['GET'])\n"
        "def three(req: func.HttpRequest) -> func.HttpResponse:\n"
        "    return func.HttpResponse()\n"
    )
    import os

    env = {"PATH": "", "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "index_functions.py"), "broken_app"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**env, "HOME": os.environ.get("HOME", "/tmp")},
    )
    broken = json.loads(out.stdout)
    with pytest.raises(AssertionError):
        test_binding_names_equal_parameter_names(broken)
    with pytest.raises(AssertionError):
        test_http_functions_take_http_request_and_return_http_response(broken)
    with pytest.raises(AssertionError):
        test_no_route_uses_a_prefix_the_host_reserves(broken)
    with pytest.raises(AssertionError):
        test_no_two_functions_share_a_route_and_method(broken)
