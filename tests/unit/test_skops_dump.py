"""dump_skops writes what skops itself writes (its schema compacted, its array-name
check indexed), and the file loads back to the same predictions."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import skops.io as sio
from sklearn.ensemble import IsolationForest

from shared.ml.serialize import dump_skops, load_skops


def test_a_forest_dumped_fast_is_the_archive_skops_writes() -> None:
    X = np.random.default_rng(3).normal(size=(400, 4))
    model = IsolationForest(n_estimators=25, random_state=0).fit(X)
    fast = dump_skops(model)
    from skops.io import _persist

    patched = _persist.ZipFile, _persist.json
    _persist.ZipFile, _persist.json = zipfile.ZipFile, json
    try:
        plain = sio.dumps(model)
    finally:
        _persist.ZipFile, _persist.json = patched

    def members(data: bytes) -> dict[str, bytes]:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {name: archive.read(name) for name in archive.namelist()}

    ours, theirs = members(fast), members(plain)
    # Arrays are named by object id, which differs between two dumps: compare contents.
    assert len(ours) == len(theirs) > 25  # every tree's arrays, once each

    def schema(files: dict[str, bytes]) -> str:
        text = json.dumps(json.loads(files.pop("schema.json")), sort_keys=True)
        text = re.sub(r'"__id__": \d+', '"__id__": 0', text)  # object ids differ per dump
        return re.sub(r'"\d+\.npy"', '"N.npy"', text)

    assert schema(ours) == schema(theirs)
    assert sorted(ours.values()) == sorted(theirs.values())
    np.testing.assert_array_equal(load_skops(fast).score_samples(X), model.score_samples(X))
