"""Cold start: a fresh process's time to its first answered prediction, beside the time to
import scikit-learn alone (the cold-start part of the online-prediction issue).

Usage (from the repository root):

    .venv/bin/python benchmarks/cold_start.py            # 5 rounds, 100-tree model
    .venv/bin/python benchmarks/cold_start.py --quick    # 3 rounds, 20-tree model

The parent trains the same RandomForest as benchmarks/predict_latency.py (100 trees on
20,000 x 30) with the platform's ``train_model``, starts an in-memory Azurite and the app,
logs in as the bootstrap admin and uploads the ONNX export (alias ``champion``); then it
stops the app and keeps Azurite. Every measurement is a fresh ``python -c`` child of the
main venv's interpreter (nothing imported beforehand but the standard library's few):

* ``sklearn``: ``import sklearn`` then ``import sklearn.ensemble``.
* ``platform``: ``import function_app``, index its functions (what the Functions worker
  does at start), then call the ``predict`` function in-process with a built
  ``HttpRequest`` carrying a bearer token the parent got at login (same JWT key). The
  first call pays the user read for auth, the alias/version reads, the blob download,
  the SHA-256 check and the onnxruntime session. A second call shows the warm cost.
  The child then reports which heavy modules it had imported (scikit-learn must not be).
* ``breakdown``: the same, with timers wrapped around auth, the create-if-missing of
  tables/containers on first use, alias and version reads, download+SHA-256 and the
  session creation (``import onnxruntime`` done first and timed on its own). The timers
  nest (creates happen inside auth and the reads), so they do not add up.
* ``login``: the same, but the child logs in itself (Argon2 password check) first.

"spawn" times are wall-clock from just before ``Popen`` in the parent to the child's
reading of ``time.time()``, so they include fork/exec and interpreter start-up. One round
is run and discarded first so that every timed round sees a warm OS page cache and
compiled ``.pyc`` files (a first boot of a new machine is slower than what is shown).
Rounds interleave the variants so drift hits all of them alike. Prints a markdown table
and writes it to benchmarks/results/cold_start.md. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

from predict_latency import ADMIN, MODEL, app_env, login, train, upload_onnx  # noqa: E402
from summary import record  # noqa: E402 - beside this script (sys.path[0])

RESULTS = ROOT / "benchmarks" / "results" / "cold_start.md"
CHILD_TIMEOUT_S = 180.0
HEAVY_MODULES = ("sklearn", "pandas", "scipy", "skops", "onnxruntime", "numpy", "onnx")

# --- child programs (run with `python -c`; only time/json/sys/os before the clock) -------
_SKLEARN = """
import time
t0 = time.time()
import json
a = time.perf_counter()
import sklearn
b = time.perf_counter()
import sklearn.ensemble
c = time.perf_counter()
print(json.dumps({"t0": t0, "done": time.time(),
                  "import_sklearn": (b - a) * 1e3, "import_ensemble": (c - b) * 1e3}))
"""

# Shared by the platform variants: import the app, index it, call predict (and login).
_PLATFORM = """
import time
t0 = time.time()
import json, os, sys
MODE = sys.argv[1]
phases = {}
a = time.perf_counter()
import function_app
import azure.functions as func
phases["import_function_app"] = (time.perf_counter() - a) * 1e3
a = time.perf_counter()
functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}
phases["index_functions"] = (time.perf_counter() - a) * 1e3

def timed(owner, attr, key):
    # Wrap owner.attr to add its duration to phases[key] (breakdown variant only).
    original = getattr(owner, attr)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[key] = phases.get(key, 0.0) + (time.perf_counter() - started) * 1e3
    setattr(owner, attr, wrapper)

if MODE == "breakdown":
    a = time.perf_counter()
    import onnxruntime
    phases["import_onnxruntime"] = (time.perf_counter() - a) * 1e3
    a = time.perf_counter()
    import shared.http.endpoint as endpoint
    import shared.registry.loader as loader
    import shared.storage as storage
    phases["import_modules_to_wrap"] = (time.perf_counter() - a) * 1e3
    # Declared in this order for the table; the first three contain storage creates.
    for key in ("auth_total", "create_if_missing", "resolve_alias", "read_version",
                "download_sha256", "onnx_session"):
        phases[key] = 0.0
    # auth_total: the guard as the wrapper calls it, so it includes building the identity
    # services on first use (token key, user store, bootstrap check, lazy jwt import).
    timed(endpoint, "authenticate", "auth_total")
    timed(storage.Storage, "_ensure", "create_if_missing")
    timed(loader.ModelLoader, "resolve", "resolve_alias")
    timed(loader.ModelLoader, "info", "read_version")
    timed(loader.ModelLoader, "read_verified", "download_sha256")
    timed(loader, "load_model", "onnx_session")

token = os.environ.get("BENCH_TOKEN", "")
if MODE == "login":
    a = time.perf_counter()
    form = "username=%s&password=%s" % (os.environ["BENCH_ADMIN"], os.environ["BENCH_PASSWORD"])
    r = functions["login"](func.HttpRequest(
        "POST", "http://127.0.0.1/auth/jwt/login", body=form.encode(), params={},
        headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert r.status_code == 200, r.get_body()
    token = json.loads(r.get_body())["access_token"]
    phases["login_call"] = (time.perf_counter() - a) * 1e3

def predict():
    return functions["predict"](func.HttpRequest(
        "POST", "http://127.0.0.1/predict/" + os.environ["BENCH_MODEL"],
        body=os.environ["BENCH_BODY"].encode(), params={},
        route_params={"model": os.environ["BENCH_MODEL"]},
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"}))

a = time.perf_counter()
r = predict()
answered = time.time()
phases["first_predict_call"] = (time.perf_counter() - a) * 1e3
assert r.status_code == 200, r.get_body()
a = time.perf_counter()
r2 = predict()
phases["second_predict_call"] = (time.perf_counter() - a) * 1e3
assert r2.status_code == 200, r2.get_body()
heavy = sorted(m for m in os.environ["BENCH_HEAVY"].split(",") if m in sys.modules)
print(json.dumps({"t0": t0, "answered": answered, "phases": phases, "loaded": heavy,
                  "answer": json.loads(r.get_body())}))
"""


def run_child(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """One fresh interpreter; its JSON line plus ``spawn`` (wall time before Popen)."""
    spawn = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,  # function_app is imported from the repository root, as the host does
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["spawn"] = spawn
    return result


def measure(
    rounds: int, env: dict[str, str]
) -> tuple[dict[str, list[float]], list[tuple[str, ...]]]:
    """``rounds`` interleaved rounds of every variant (after one discarded round): the
    samples per measurement, and the distinct sets of heavy modules the children had."""
    samples: dict[str, list[float]] = {}
    loaded: set[tuple[str, ...]] = set()

    def add(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    for round_ in range(rounds + 1):
        keep = round_ > 0  # round 0 warms the page cache and writes .pyc files
        print(f"round {round_}/{rounds}{'' if keep else ' (discarded)'}", flush=True)
        sk = run_child(_SKLEARN, [], env)
        results = {
            mode: run_child(_PLATFORM, [mode], env) for mode in ("platform", "breakdown", "login")
        }
        if not keep:
            continue
        add("sklearn: interpreter start (spawn -> first line)", (sk["t0"] - sk["spawn"]) * 1e3)
        add("sklearn: `import sklearn`", sk["import_sklearn"])
        add("sklearn: + `import sklearn.ensemble`", sk["import_ensemble"])
        add("sklearn: both imports", sk["import_sklearn"] + sk["import_ensemble"])
        add("sklearn: spawn -> both imported", (sk["done"] - sk["spawn"]) * 1e3)
        for mode, res in results.items():
            loaded.add(tuple(res["loaded"]))
            if mode == "platform":
                add("platform: interpreter start", (res["t0"] - res["spawn"]) * 1e3)
            for phase, ms in res["phases"].items():
                add(f"{mode}: {phase}", ms)
            add(
                f"{mode}: spawn -> first answered prediction",
                (res["answered"] - res["spawn"]) * 1e3,
            )
    return samples, sorted(loaded)


def render(
    meta: dict[str, str], samples: dict[str, list[float]], loaded: list[tuple[str, ...]]
) -> str:
    lines = ["# Cold start", ""] + [f"- {k}: {v}" for k, v in meta.items()]
    lines += [
        "",
        "| measurement | median ms | min ms | max ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, values in samples.items():
        lines.append(
            f"| {key} | {statistics.median(values):.1f} | {min(values):.1f} | {max(values):.1f} |"
        )
    total = statistics.median(samples["platform: spawn -> first answered prediction"])
    sk_imports = statistics.median(samples["sklearn: both imports"])
    sk_spawn = statistics.median(samples["sklearn: spawn -> both imported"])
    lines += [
        "",
        "## Side by side (medians)",
        "",
        "| fresh process | ms |",
        "| --- | ---: |",
        f"| start -> first answered prediction (imports + auth + download + SHA-256 + session)"
        f" | {total:.1f} |",
        f"| `import sklearn` + `import sklearn.ensemble` alone (in-process) | {sk_imports:.1f} |",
        f"| start -> scikit-learn imported (same spawn-based clock as the first line) |"
        f" {sk_spawn:.1f} |",
        "",
        "Heavy modules present in the platform children after the predictions: "
        + "; ".join(", ".join(x) or "none" for x in loaded)
        + f" (checked: {', '.join(HEAVY_MODULES)}). scikit-learn imported: "
        + ("**yes**" if any("sklearn" in x for x in loaded) else "no")
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2k rows x 20 trees")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows, trees = (2000, 20) if args.quick else (20_000, 100)
    rounds = 3 if args.quick else args.rounds

    import httpx

    from devhost.azurite import start_azurite
    from shared.settings import get_settings

    print(f"training: {rows} rows x 30 features, {trees} trees", flush=True)
    trained = train(rows, 30, trees)
    sample = {f["name"]: 0.1 * i for i, f in enumerate(trained.features)}
    azurite = start_azurite(in_memory=True)
    try:
        password = secrets.token_urlsafe(18)
        env = app_env(azurite.connection_string, password)
        os.environ.update(env)
        get_settings.cache_clear()  # the app's container reads the settings set above
        import function_app
        from devhost.server import LocalHost
        from devhost.settings import HostConfig

        host = LocalHost(
            function_app.app,
            port=0,
            config=HostConfig.load(ROOT / "host.json"),
            timers=False,
            queues=False,
        )
        host.start()
        try:
            with httpx.Client(base_url=host.url, timeout=120) as client:
                token = login(client, password)
                version = upload_onnx(client, token, MODEL, trained.onnx_bytes)
        finally:
            # Only Azurite stays: the children are the app from here on.
            host.stop()
        child_env = dict(os.environ)
        child_env.update(
            {
                "BENCH_TOKEN": token,
                "BENCH_ADMIN": ADMIN,
                "BENCH_PASSWORD": password,
                "BENCH_MODEL": MODEL,
                "BENCH_BODY": json.dumps({"records": [sample], "return_probabilities": True}),
                "BENCH_HEAVY": ",".join(HEAVY_MODULES),
            }
        )
        samples, loaded = measure(rounds, child_env)
    finally:
        azurite.stop()

    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.platform()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}",
        "model": f"RandomForestClassifier({trees} trees) on {rows} x 30, ONNX"
        f" {len(trained.onnx_bytes) / 1e6:.1f} MB, version {version} in Azurite (in memory)",
        "rounds": f"{rounds} (median reported) after 1 discarded round; page cache warm",
        # Other processes on the machine skew every number here: say how busy it was.
        "load average (1 min)": f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
        f" ({os.cpu_count()} cores)",
    }
    report = render(meta, samples, loaded)
    record(
        "cold start",
        "fresh process to the first answered prediction",
        statistics.median(samples["platform: spawn -> first answered prediction"]) / 1000,
        statistics.median(samples["sklearn: spawn -> both imported"]) / 1000,
        "a fresh process importing scikit-learn",
        "s",
    )
    print()
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
