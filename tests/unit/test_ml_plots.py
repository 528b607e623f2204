"""Training plots: which plots each task gets, that they are real PNGs, and what they show."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris

from shared.ml.plots import (
    ANOMALY_HISTOGRAM,
    ANOMALY_OVER_TIME,
    CONFUSION_MATRIX,
    FEATURE_IMPORTANCE,
    PREDICTED_VS_ACTUAL,
    feature_importances,
    render_training_plots,
    time_column,
)
from shared.ml.train import train_model

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def test_classification_gets_importance_and_confusion_matrix() -> None:
    df = load_iris(as_frame=True).frame
    trained = train_model(
        df,
        target="target",
        features=None,
        task=None,
        algorithm="random_forest",
        params={"n_estimators": 10},
    )
    plots = render_training_plots(trained, df)
    assert set(plots) == {FEATURE_IMPORTANCE, CONFUSION_MATRIX}
    for data in plots.values():
        assert data.startswith(PNG)
        assert png_size(data) == (576, 326)
        assert len(data) < 60_000
    # Petal measurements separate iris species; sepal width barely does.
    importances = feature_importances(trained)
    assert set(importances) == {f["name"] for f in trained.features}
    ranked = sorted(importances, key=importances.get, reverse=True)
    assert ranked[0].startswith("petal")
    assert ranked[-1] == "sepal width (cm)"


def test_one_hot_importances_are_summed_back_to_their_feature() -> None:
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame(
        {
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "noise": rng.normal(size=n),
        }
    )
    df["y"] = (df["city"] == "paris").astype(int) * 10 + rng.normal(size=n) * 0.1
    trained = train_model(
        df, target="y", features=None, task="regression", algorithm="ridge", params={}
    )
    importances = feature_importances(trained)
    assert set(importances) == {"city", "noise"}
    assert importances["city"] > 10 * importances["noise"]
    assert set(render_training_plots(trained, df)) == {FEATURE_IMPORTANCE, PREDICTED_VS_ACTUAL}


def test_models_without_native_importances_use_permutation() -> None:
    df = load_diabetes(as_frame=True).frame
    trained = train_model(
        df,
        target="target",
        features=None,
        task=None,
        algorithm="hist_gradient_boosting",
        params={"max_iter": 20},
    )
    importances = feature_importances(trained)
    assert len(importances) == 10
    assert max(importances, key=importances.get) in ("bmi", "s5")


@pytest.mark.parametrize("with_time", [True, False])
def test_anomaly_plots_use_the_time_column_when_there_is_one(with_time: bool) -> None:
    rng = np.random.default_rng(3)
    n = 300
    df = pd.DataFrame({"co2": rng.normal(600, 20, n), "temp": rng.normal(21, 1, n)})
    df.loc[[50, 200], "co2"] = 2000  # two obvious outliers
    if with_time:
        df["at"] = pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")
    trained = train_model(
        df,
        target=None,
        features=["co2", "temp"],
        task=None,
        algorithm="isolation_forest",
        params={"n_estimators": 20},
    )
    assert time_column(df) == ("at" if with_time else None)
    plots = render_training_plots(trained, df)
    assert set(plots) == {ANOMALY_HISTOGRAM, ANOMALY_OVER_TIME}
    assert all(png_size(p) == (576, 326) for p in plots.values())


def test_plotting_does_not_use_pyplot() -> None:
    # pyplot keeps every figure in a global registry: a worker drawing thousands of
    # partitions would leak them. The object API leaves nothing behind.
    import sys

    df = load_iris(as_frame=True).frame
    trained = train_model(
        df, target="target", features=None, task="regression", algorithm="ridge", params={}
    )
    render_training_plots(trained, df)
    assert "matplotlib.pyplot" not in sys.modules
