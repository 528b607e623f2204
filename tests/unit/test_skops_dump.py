"""dump_skops writes what skops itself writes (its schema compacted and encoded by orjson,
its array-name check indexed, its arrays' bytes written by shared.ml.npy_bytes), and the
file loads back to the same predictions."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest
from skops.io._utils import _get_state

from shared.ml import algorithms as algos
from shared.ml.serialize import _array_state, _CompactJson, dump_skops, load_skops
from shared.ml.train import train_model


def _plain_skops(model: Any) -> bytes:
    """What skops writes without this module's changes."""
    from skops.io import _persist
    from skops.io._numpy import ndarray_get_state
    from skops.io._utils import _get_state

    patched = _persist.ZipFile, _persist.json
    arrays = _get_state.dispatch(np.ndarray)
    _persist.ZipFile, _persist.json = zipfile.ZipFile, json
    _get_state.register(np.ndarray, ndarray_get_state)
    try:
        return sio.dumps(model)
    finally:
        _persist.ZipFile, _persist.json = patched
        _get_state.register(np.ndarray, arrays)


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _schema(files: dict[str, bytes]) -> str:
    text = json.dumps(json.loads(files.pop("schema.json")), sort_keys=True)
    text = re.sub(r'"__id__": \d+', '"__id__": 0', text)  # object ids differ per dump
    return re.sub(r'"\d+\.npy"', '"N.npy"', text)


def _assert_same_archive(fast: bytes, plain: bytes) -> None:
    ours, theirs = _members(fast), _members(plain)
    assert len(ours) == len(theirs)
    # Arrays are named by object id, which differs between two dumps: compare contents.
    assert _schema(ours) == _schema(theirs)
    assert sorted(ours.values()) == sorted(theirs.values())


def test_a_forest_dumped_fast_is_the_archive_skops_writes() -> None:
    X = np.random.default_rng(3).normal(size=(400, 4))
    model = IsolationForest(n_estimators=25, random_state=0).fit(X)
    fast = dump_skops(model)
    assert _get_state.dispatch(np.ndarray) is _array_state  # the fast path was taken
    assert len(_members(fast)) > 25  # every tree's arrays, once each
    _assert_same_archive(fast, _plain_skops(model))
    np.testing.assert_array_equal(load_skops(fast).score_samples(X), model.score_samples(X))


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "température": rng.normal(20, 3, rows),  # a non-ASCII name: UTF-8 vs \u escapes
            "salle": rng.choice(["été", "hiver", "naïve"], rows),  # categories as text
            "ouvert": rng.integers(0, 2, rows).astype(bool),
            "label": rng.choice(["oui", "non"], rows),
            "valeur": rng.normal(0, 1, rows),
        }
    )


_CASES = [
    (algorithm, task)
    for algorithm in algos.ALGORITHMS
    for task in ("classification", "regression", "anomaly")
    if algos.supports(algorithm, task)
]


@pytest.mark.parametrize(("algorithm", "task"), _CASES)
def test_every_algorithms_pipeline_dumps_to_the_archive_skops_writes(
    algorithm: str, task: str
) -> None:
    frame = _frame()
    target = {"classification": "label", "regression": "valeur", "anomaly": None}[task]
    features = ["température", "salle", "ouvert"]
    estimator = algos.make_estimator(algorithm, task, seed=0)
    params = {"n_estimators": 5} if "n_estimators" in estimator.get_params() else {}
    trained = train_model(
        frame, target=target, features=features, task=task, algorithm=algorithm, params=params
    )
    _assert_same_archive(trained.skops_bytes, _plain_skops(trained.estimator))
    X = trained.X_holdout
    loaded = load_skops(trained.skops_bytes)
    np.testing.assert_array_equal(loaded.predict(X), trained.estimator.predict(X))


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    # Non-string keys and integers past 64 bits: orjson raises, the encoder falls back.
    for value in ({1: "a", "b": [2**70]}, {"n": 2**64}):
        assert json.loads(_CompactJson.dumps(value)) == json.loads(json.dumps(value))
    # The ordinary schema path: orjson's output, parsed, is the standard library's.
    schema = {"a": [1, True, None, 'é\u2028"\\'], "nested": {"x": {"y": []}}}
    assert _CompactJson.dumps(schema) == json.dumps(
        schema, separators=(",", ":"), ensure_ascii=False
    )
