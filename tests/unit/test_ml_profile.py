"""The training profile: per-feature summaries for drift detection, JSON-ready."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shared.ml.pipeline import describe_features, prepare_frame
from shared.ml.profile import MAX_CATEGORIES, OTHER, QUANTILE_PROBS, build_profile
from shared.ml.train import train_model


def test_numeric_feature_summary() -> None:
    values = np.arange(1.0, 101.0)
    values[:10] = np.nan
    profile = build_profile(pd.DataFrame({"v": values}), ["v"])
    assert profile["n_rows"] == 100
    v = profile["features"]["v"]
    assert v["dtype"] == "number"
    assert (v["count"], v["missing"]) == (90, 10)
    assert v["mean"] == pytest.approx(55.5)
    assert v["std"] == pytest.approx(np.std(np.arange(11.0, 101.0)))
    assert (v["min"], v["max"]) == (11.0, 100.0)
    assert v["quantiles"]["probs"] == QUANTILE_PROBS
    assert len(QUANTILE_PROBS) == 21 and QUANTILE_PROBS[1] == 0.05
    assert v["quantiles"]["values"][0] == 11.0 and v["quantiles"]["values"][-1] == 100.0
    edges, counts = v["histogram"]["edges"], v["histogram"]["counts"]
    assert edges == sorted(set(v["quantiles"]["values"]))
    assert len(counts) == len(edges) - 1
    assert sum(counts) == 90  # every present value lands in a bin


def test_histogram_edges_are_deduplicated_quantiles() -> None:
    values = np.array([0.0] * 81 + [1.0] * 18 + [5.0])  # 21 quantiles, three distinct
    h = build_profile(pd.DataFrame({"v": values}), ["v"])["features"]["v"]["histogram"]
    assert h["edges"] == [0.0, 1.0, 5.0]
    assert h["counts"] == [81, 19]  # the last bin is closed: [1, 5]


def test_constant_and_empty_numeric_columns() -> None:
    df = pd.DataFrame({"same": [3.0] * 12, "empty": [np.nan] * 12})
    profile = build_profile(df, ["same", "empty"])
    same = profile["features"]["same"]
    assert same["histogram"] == {"edges": [3.0, 3.0], "counts": [12]}
    assert same["std"] == 0.0
    empty = profile["features"]["empty"]
    assert (empty["count"], empty["missing"]) == (0, 12)
    assert empty["mean"] is None and empty["quantiles"] is None and empty["histogram"] is None


def test_categorical_feature_top_categories_and_other() -> None:
    # 60 categories: a,a,a (3 rows) then one row each for c0..c58; plus two gaps.
    values = ["a"] * 3 + [f"c{i:02d}" for i in range(59)] + [None, None]
    profile = build_profile(pd.DataFrame({"city": values}), ["city"])
    city = profile["features"]["city"]
    assert city["dtype"] == "string"
    assert (city["count"], city["missing"], city["n_categories"]) == (62, 2, 60)
    categories = city["categories"]
    assert len(categories) == MAX_CATEGORIES + 1
    assert next(iter(categories)) == "a"  # most frequent first
    assert categories["a"] == pytest.approx(3 / 62)
    assert categories[OTHER] == pytest.approx(10 / 62)
    assert sum(categories.values()) == pytest.approx(1.0)


def test_bool_and_category_dtypes() -> None:
    df = pd.DataFrame(
        {
            "flag": pd.Series([True, False, True, None], dtype="boolean"),
            "tier": pd.Categorical(["gold", "gold", "silver", None]),
            "n": pd.Series([1, 2, None, 4], dtype="Int64"),
        }
    )
    features = describe_features(df, ["flag", "tier", "n"])
    assert [f["dtype"] for f in features] == ["bool", "string", "number"]
    profile = build_profile(df, features)
    flag = profile["features"]["flag"]
    assert flag["dtype"] == "bool"
    assert flag["categories"] == {"true": pytest.approx(2 / 3), "false": pytest.approx(1 / 3)}
    assert flag["missing"] == 1
    assert profile["features"]["tier"]["categories"] == {
        "gold": pytest.approx(2 / 3),
        "silver": pytest.approx(1 / 3),
    }
    assert profile["features"]["n"]["missing"] == 1
    # The model's own input form profiles the same as the raw frame.
    assert build_profile(prepare_frame(df, features), features) == profile


def test_profile_is_strict_json() -> None:
    df = pd.DataFrame(
        {
            "x": [1.0, np.inf, np.nan, 4.0, -2.5],
            "s": ["a", None, "b", "a", ""],
            "b": [True, False, True, True, False],
        }
    )
    profile = build_profile(df, list(df.columns))
    assert json.loads(json.dumps(profile, allow_nan=False)) == profile
    assert profile["features"]["x"]["missing"] == 2  # infinities count as missing
    assert profile["features"]["s"]["missing"] == 2  # "" is the missing marker for text


def test_trained_model_carries_feature_and_target_profile() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=200),
            "colour": rng.choice(["red", "blue"], 200),
            "when": pd.date_range("2024-01-01", periods=200, freq="D"),
        }
    )
    df["y"] = df["x"] * 2 + rng.normal(size=200)
    model = train_model(
        df,
        target="y",
        features=None,
        task=None,
        algorithm="ridge",
        params={},
    )
    assert model.profile["n_rows"] == 200
    assert set(model.profile["features"]) == {"x", "colour"}  # datetimes are not features
    assert model.profile["target"]["dtype"] == "number"
    assert model.profile["features"]["colour"]["categories"].keys() == {"red", "blue"}
    json.dumps(model.profile, allow_nan=False)
