"""npy_bytes writes the bytes numpy.save writes, or leaves the array to numpy.save."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest, RandomForestClassifier

from shared.ml import npy_bytes as npy
from shared.ml.npy_bytes import npy_bytes, numpy_save_bytes

_NODE = np.dtype(
    [("left", "<i8"), ("right", "<i8"), ("threshold", "<f8"), ("missing", "u1")], align=True
)


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    grid = rng.normal(size=(6, 5))
    return [
        np.arange(10, dtype=np.int64),
        rng.normal(size=(300, 4)),
        rng.normal(size=(2, 3, 4)).astype(np.float32),
        np.asfortranarray(grid),  # Fortran-contiguous only
        grid[:, ::2],  # neither: written in C order
        grid.T,
        grid[::-1],
        np.array(7.25),  # 0-d
        np.zeros((0, 3)),
        np.zeros(0, dtype=np.int32),
        np.array([True, False, True]),
        np.array(["é", "abc"]),  # unicode data, a latin-1 header
        np.zeros(2, dtype=[("é", "<f8")]),  # a field name in latin-1: still format 1.0
        np.array([b"x", b"yz"]),
        np.zeros(4, dtype=_NODE),
        np.zeros(3, dtype=[("a", ">f4"), ("b", "<i2", (2,))]),  # big-endian, sub-arrays
        np.arange(6, dtype=">i4"),
        np.array([1 + 2j, 3j]),
        np.array(["2024-01-01"], dtype="datetime64[D]"),
        np.zeros((1, 10**6 + 3), dtype=np.uint8),  # long first axis: shorter padding
    ]


@pytest.mark.parametrize("array", _arrays(), ids=lambda a: f"{a.dtype}-{a.shape}")
def test_the_bytes_numpy_save_writes(array: np.ndarray) -> None:
    assert npy_bytes(array) == numpy_save_bytes(array)
    assert np.array_equal(np.load(io.BytesIO(npy_bytes(array))), array)


def test_every_array_of_fitted_forests() -> None:
    X = np.random.default_rng(1).normal(size=(200, 5))
    y = X[:, 0] > 0
    checked = 0
    for model in (
        IsolationForest(n_estimators=5, random_state=0).fit(X),
        RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
    ):
        for tree in model.estimators_:
            for array in tree.tree_.__getstate__().values():
                if isinstance(array, np.ndarray):
                    assert npy_bytes(array) == numpy_save_bytes(array)
                    checked += 1
    assert checked >= 20


@pytest.mark.parametrize(
    "array",
    [
        np.array([object(), 1], dtype=object),
        np.zeros(2, dtype=np.dtype(np.float64, metadata={"unit": "m"})),
        np.ma.masked_array([1.0, 2.0]),
        np.zeros(2, dtype=[("ж", "<f8")]),  # a header outside latin-1: format 3.0
        np.zeros(1, dtype=[(f"field_{i:05d}", "<f8") for i in range(3000)]),  # format 2.0
    ],
    ids=["object", "metadata", "subclass", "utf8-header", "long-header"],
)
def test_what_numpy_writes_otherwise_is_left_to_numpy(array: np.ndarray) -> None:
    assert npy_bytes(array) is None


def test_the_check_against_numpy_save(monkeypatch: pytest.MonkeyPatch) -> None:
    assert npy.same_as_numpy()
    monkeypatch.setattr(npy, "_ALIGN", 16)  # a numpy that aligned its headers otherwise
    assert not npy.same_as_numpy()
