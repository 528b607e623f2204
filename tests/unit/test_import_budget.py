"""Cold starts of login and heartbeat must not pay for the ML stack."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "pandas",
    "sklearn",
    "skops",
    "onnxruntime",
    "numpy",
    "scipy",
    "matplotlib",
    "azure.identity",
)


def test_import_function_app_loads_no_ml_stack() -> None:
    code = (
        "import json, sys; import function_app; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_heartbeat_answers_without_loading_the_ml_stack() -> None:
    code = f"""
import json, sys
import azure.functions as func
import function_app
fn = {{f.get_function_name(): f for f in function_app.app.get_functions()}}["heartbeat"]
resp = fn.get_user_function()(func.HttpRequest("GET", "http://localhost/heartbeat", body=b""))
print(json.dumps([resp.status_code, [m for m in {HEAVY!r} if m in sys.modules]]))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "", "LOCAL_SETTINGS_PATH": "/nonexistent"},
    )
    status, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert status == 200
    assert loaded == []
