"""The native thread pools are looked up once per process, not per fit (issue 10)."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pandas as pd
import pytest
import threadpoolctl

from shared.ml import threads
from shared.ml.plots import plot_data
from shared.ml.train import train_model


def _rooms(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "when": pd.date_range("2026-01-01", periods=n, freq="h"),
            "co2": rng.normal(600, 50, n),
            "occupancy": rng.integers(0, 30, n).astype(float),
        }
    )


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every search of the process's libraries for thread pools, whoever asks:
    ``threadpool_limits`` and ``ThreadpoolController`` both run this constructor."""
    made: list[int] = []
    original = threadpoolctl.ThreadpoolController.__init__

    def counted(self: Any) -> None:
        made.append(1)
        original(self)

    monkeypatch.setattr(threadpoolctl.ThreadpoolController, "__init__", counted)
    return made


def test_training_a_room_and_its_plot_numbers_does_not_search_for_thread_pools_again(
    lookups: list[int],
) -> None:
    frame = _rooms()

    def one_room() -> None:
        trained = train_model(
            frame,
            target=None,
            features=["co2", "occupancy"],
            task=None,
            algorithm="isolation_forest",
            params={"n_estimators": 10},
        )
        assert plot_data(trained, frame)

    one_room()  # the first room may import and search
    lookups.clear()
    one_room()
    one_room()
    # It was 3 per room (the fit, the plot's scores, its numbers): 6 here. One is allowed,
    # for a module another thread of the test process may import meanwhile.
    assert len(lookups) <= 1, lookups


def test_the_limit_holds_every_pool_and_is_lifted_after() -> None:
    import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP pool)

    before = {pool["filepath"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    assert before, "no OpenMP or BLAS pool found: nothing would be checked"
    with threads.native_threads(1):
        inside = {p["filepath"]: p["num_threads"] for p in threadpoolctl.threadpool_info()}
    after = {pool["filepath"]: pool["num_threads"] for pool in threadpoolctl.threadpool_info()}
    assert inside == dict.fromkeys(before, 1)
    assert after == before


def test_a_module_imported_since_makes_it_search_again(
    monkeypatch: pytest.MonkeyPatch, lookups: list[int]
) -> None:
    # The modules it counts are the test's own: no other thread can import into them.
    modules = dict(sys.modules)
    monkeypatch.setattr(threads, "sys", types.SimpleNamespace(modules=modules))
    with threads.native_threads(1):
        pass
    lookups.clear()
    with threads.native_threads(1):
        pass
    assert lookups == []
    modules["just_imported"] = types.ModuleType("x")  # it may have loaded a pool
    with threads.native_threads(1):
        pass
    assert lookups == [1]
