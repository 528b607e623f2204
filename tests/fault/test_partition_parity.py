"""Issue 10, done means: every trained partition of every algorithm still serves what
scikit-learn predicts, within the parity tolerances, after the job's faster packaging
(holdout answers shared, array-built trees, streamed registration, deferred plots).

One job trains a partitioned spec per (algorithm, task) over the same mixed data (numbers
with gaps, text, a category, a nullable bool); each partition's ONNX file, read back from
the registry, is run on fresh rows of its partition and compared with its skops pipeline.
"""

from __future__ import annotations

import io
import json
import secrets
from typing import Any

import httpx
import numpy as np
import pytest

from shared.ml.algorithms import ALGORITHMS, tasks_for
from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.fault.conftest import pump
from tests.unit.test_ml_onnx import SMALL, TARGETS, mixed_frame

pytestmark = pytest.mark.fault
COMBOS = [(a, t) for a in ALGORITHMS for t in tasks_for(a)]
ROOMS = ("north", "south")


def frame(n: int, seed: int):
    df = mixed_frame(n=n, seed=seed).drop(columns=["day"])
    df["room"] = np.where(np.arange(n) % 2 == 0, *ROOMS)
    return df


def test_every_algorithm_partitioned_serves_what_sklearn_predicts(
    host: Any, private_queue, trainer_on
) -> None:
    from shared.http import current_services
    from shared.ml.onnx_export import _session, onnx_inputs, run_onnx
    from shared.ml.pipeline import prepare_frame
    from shared.ml.serialize import load_skops
    from shared.registry.files import find_file

    client = httpx.Client(base_url=host.url, timeout=60)
    headers = bearer(login(client, ADMIN, ADMIN_PASSWORD))
    name = f"par-{secrets.token_hex(3)}"
    buffer = io.StringIO()
    frame(400, seed=0).to_csv(buffer, index=False)
    r = client.put(
        f"/datasets/{name}",
        headers={**headers, "Content-Type": "text/csv"},
        content=buffer.getvalue().encode(),
    )
    assert r.status_code == 201, r.text
    specs = {}
    for algorithm, task in COMBOS:
        spec = f"{name}-{algorithm.replace('_', '-')}-{task[:3]}"
        body = {
            "dataset": name,
            "target": TARGETS[task],
            "task": task,
            "algorithm": algorithm,
            "params": SMALL.get(algorithm, {}),
            "partition_by": "room",
            "features": ["x", "count", "city", "tier", "member"],  # not the other target
            "min_rows": 10,
            "enabled": False,
        }
        r = client.put(f"/train/specs/{spec}", headers=headers, json=body)
        assert r.status_code == 201, r.text
        specs[spec] = task
    runner = trainer_on(lambda n, message: False)
    job, _ = runner.start(list(specs), trigger="http", by=ADMIN)
    pump(runner, private_queue)
    done = client.get(f"/train/jobs/{job.job_id}", headers=headers).json()
    assert done["status"] == "succeeded", json.dumps(done)[:2000]

    registry = current_services().model_registry
    fresh = frame(120, seed=7)
    for spec, task in specs.items():
        info = registry.get_version(spec, 1)
        manifest = json.loads(registry.read_file(next(f for f in info.files if f.role == "model")))
        assert set(manifest["partitions"]) == set(ROOMS), spec
        for room, entry in manifest["partitions"].items():
            assert entry["onnx"], f"{spec}/{room}: no verified ONNX"
            onnx_bytes = registry.read_file(find_file(info, entry["onnx"], manifest))
            pipeline = load_skops(registry.read_file(find_file(info, entry["skops"], manifest)))
            rows = fresh[fresh["room"] == room].reset_index(drop=True)
            features = manifest["features"]
            got = run_onnx(_session(onnx_bytes), onnx_inputs(features, rows), task)
            X = prepare_frame(rows, features)
            where = f"{spec}/{room}"
            if task == "classification":
                np.testing.assert_array_equal(got["predictions"], pipeline.predict(X), where)
                np.testing.assert_allclose(
                    got["probabilities"], pipeline.predict_proba(X), atol=1e-4, err_msg=where
                )
            elif task == "regression":
                expected = pipeline.predict(X)
                scale = max(1.0, float(np.abs(expected).max()))
                np.testing.assert_allclose(
                    got["predictions"], expected, rtol=0, atol=1e-4 * scale, err_msg=where
                )
            else:
                np.testing.assert_array_equal(got["predictions"], pipeline.predict(X), where)
                np.testing.assert_allclose(
                    got["scores"], pipeline.decision_function(X), atol=1e-4, err_msg=where
                )
