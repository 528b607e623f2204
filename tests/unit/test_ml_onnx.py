"""ONNX export: conventions, parity with scikit-learn, and the serving helpers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

import shared.ml.train as train_module
from shared.ml.algorithms import ALGORITHMS, tasks_for
from shared.ml.onnx_export import _session, export_onnx, onnx_inputs, run_onnx, verify_parity
from shared.ml.pipeline import prepare_frame
from shared.ml.serialize import load_skops
from shared.ml.train import TrainedModel, train_model
from shared.registry.formats import inspect_model

SMALL = {"random_forest": {"n_estimators": 10}, "gradient_boosting": {"n_estimators": 20}}
SMALL |= {"hist_gradient_boosting": {"max_iter": 20}, "isolation_forest": {"n_estimators": 10}}
TARGETS = {"classification": "label", "regression": "amount", "anomaly": None}


def mixed_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numbers (with gaps), text (with gaps), a category, a nullable bool, and a timestamp."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.integers(0, 50, n),
            "city": pd.Series(rng.choice(["paris", "lyon", "nice"], n), dtype="string"),
            "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
            "member": pd.Series(rng.random(n) > 0.5, dtype="boolean"),
            "day": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
        }
    )
    df.loc[::9, "x"] = np.nan
    df.loc[::11, "city"] = pd.NA
    df.loc[::13, "member"] = pd.NA
    signal = df["x"].fillna(0) + (df["city"] == "paris").astype(float) + rng.normal(size=n) * 0.3
    df["label"] = np.where(signal > 0.3, "yes", "no")
    df["amount"] = df["x"].fillna(0) * 10 + df["count"] * 1000 + rng.normal(size=n)
    return df


def train(df: pd.DataFrame, algorithm: str, task: str, **kwargs: Any) -> TrainedModel:
    target = TARGETS[task]
    return train_model(
        df,
        target=target,
        features=kwargs.pop("features", None),
        task=task,
        algorithm=algorithm,
        params=SMALL.get(algorithm, {}),
        exclude=[c for c in ("label", "amount") if c != target],
        **kwargs,
    )


def serve(model: TrainedModel, df: pd.DataFrame) -> dict[str, np.ndarray]:
    return run_onnx(_session(model.onnx_bytes), onnx_inputs(model.features, df), model.task)


# Every algorithm converts with verified parity on mixed data (numbers, text, category,
# bool, gaps): random_forest, gradient_boosting, hist_gradient_boosting, logistic_regression
# (classification); random_forest, gradient_boosting, hist_gradient_boosting,
# linear_regression, ridge (regression); isolation_forest (anomaly).
@pytest.mark.parametrize(("algorithm", "task"), [(a, t) for a in ALGORITHMS for t in tasks_for(a)])
def test_every_algorithm_exports_onnx_with_verified_parity(algorithm: str, task: str) -> None:
    df = mixed_frame()
    model = train(df, algorithm, task)
    parity = model.onnx_parity
    assert parity == {
        "converted": True,
        "max_abs_diff": parity["max_abs_diff"],
        "verified": True,
        "error": None,
    }
    assert model.onnx_bytes is not None
    assert parity["max_abs_diff"] <= (1e-4 * 60_000 if task == "regression" else 1e-4)

    # Serving from raw rows (gaps, unseen category) agrees with the skops pipeline.
    fresh = mixed_frame(n=40, seed=5)
    fresh.loc[0, "city"] = "marseille"
    got = serve(model, fresh)
    pipeline = load_skops(model.skops_bytes)
    X = prepare_frame(fresh, model.features)
    if task == "classification":
        np.testing.assert_array_equal(got["predictions"], pipeline.predict(X))
        np.testing.assert_allclose(got["probabilities"], pipeline.predict_proba(X), atol=1e-4)
    elif task == "regression":
        expected = pipeline.predict(X)  # same bound as the parity check: relative to the scale
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got["predictions"], expected, rtol=0, atol=1e-4 * scale)
    else:
        np.testing.assert_array_equal(got["predictions"], pipeline.predict(X))
        np.testing.assert_allclose(got["scores"], pipeline.decision_function(X), atol=1e-4)


def test_onnx_inputs_outputs_and_metadata_follow_the_conventions() -> None:
    model = train(mixed_frame(), "random_forest", "classification")
    graph = onnx.load_from_string(model.onnx_bytes).graph
    inputs = {
        i.name: (i.type.tensor_type.elem_type, [d.dim_value for d in i.type.tensor_type.shape.dim])
        for i in graph.input
    }
    float_, string = onnx.TensorProto.FLOAT, onnx.TensorProto.STRING
    assert inputs == {
        "x": (float_, [0, 1]),
        "count": (float_, [0, 1]),
        "city": (string, [0, 1]),
        "tier": (string, [0, 1]),
        "member": (float_, [0, 1]),  # bools are fed as 0/1 floats
    }
    assert [o.name for o in graph.output] == ["label", "probabilities"]  # no ZipMap
    meta = {p.key: p.value for p in onnx.load_from_string(model.onnx_bytes).metadata_props}
    assert meta["feature_names"] == "x,count,city,tier,member"
    assert meta["feature_dtypes"] == "number,number,string,string,bool"
    assert json.loads(meta["features"]) == model.features
    assert meta["task"] == "classification"
    assert json.loads(meta["classes"]) == ["no", "yes"]
    inspection = inspect_model("onnx", model.onnx_bytes)  # the registry reads it back
    assert inspection.task == "classification"
    assert [f.name for f in inspection.features] == ["x", "count", "city", "tier", "member"]


def test_regression_and_anomaly_output_names() -> None:
    df = mixed_frame()
    regression = onnx.load_from_string(train(df, "ridge", "regression").onnx_bytes)
    assert [o.name for o in regression.graph.output] == ["variable"]
    anomaly = onnx.load_from_string(train(df, "isolation_forest", "anomaly").onnx_bytes)
    assert [o.name for o in anomaly.graph.output] == ["label", "scores"]


def test_awkward_feature_names_keep_their_names_or_map_by_position() -> None:
    rng = np.random.default_rng(2)
    df = pd.DataFrame(
        {
            "mean radius": rng.normal(size=200),
            "a,b": rng.choice(["x", "y"], 200),
            "label": rng.normal(size=200),  # collides with the classifier's output name
        }
    )
    df["target"] = (df["mean radius"] + (df["a,b"] == "x")) > 0.5
    model = train_model(
        df,
        target="target",
        features=None,
        task=None,
        algorithm="random_forest",
        params={"n_estimators": 5},
    )
    assert model.onnx_parity["verified"], model.onnx_parity
    names = [i.name for i in onnx.load_from_string(model.onnx_bytes).graph.input]
    assert names[:2] == ["mean radius", "a,b"]
    assert names[2] != "label"  # kept skl2onnx's renamed input; run_onnx maps by position
    got = serve(model, df.head(30))
    assert got["predictions"].dtype == bool  # boolean classes come back as booleans
    np.testing.assert_array_equal(
        got["predictions"], model.estimator.predict(prepare_frame(df.head(30), model.features))
    )


def test_unverified_onnx_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    def disagree(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"converted": True, "max_abs_diff": 1.0, "verified": False, "error": "differs"}

    monkeypatch.setattr(train_module, "verify_parity", disagree)
    model = train(mixed_frame(), "ridge", "regression")
    assert model.onnx_bytes is None
    assert model.onnx_parity["verified"] is False
    assert model.skops_bytes


def test_parity_check_catches_a_different_model() -> None:
    df = mixed_frame()
    a = train(df, "gradient_boosting", "classification", seed=1)
    b = train(df, "gradient_boosting", "classification", seed=2, features=["x", "city"])
    X = prepare_frame(df, b.features)
    result = verify_parity(a.onnx_bytes, b.estimator, X, "classification", features=b.features)
    assert result["verified"] is False
    assert result["error"]


class Unconvertible(ClassifierMixin, BaseEstimator):
    def fit(self, X: Any, y: Any) -> Unconvertible:
        self.classes_ = np.unique(y)
        return self

    def predict(self, X: Any) -> Any:
        return np.repeat(self.classes_[:1], len(X))


def test_conversion_failure_is_reported_not_raised() -> None:
    X = pd.DataFrame({"x": np.arange(10, dtype=float)})
    pipeline = Pipeline([("model", Unconvertible())]).fit(X, np.arange(10) % 2)
    data, info = export_onnx(pipeline, X, "classification")
    assert data is None
    assert info["converted"] is False
    assert "Unconvertible" in info["error"]


def test_the_operator_version_table_is_built_once_and_exports_are_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """skl2onnx's table of ONNX operator versions is shared between conversions (it was
    rebuilt from every onnx schema per export); the exported graphs stay the same."""
    from skl2onnx.common import _container

    df = mixed_frame()
    models = [train(df, "random_forest", "classification"), train(df, "ridge", "regression")]
    first = [m.onnx_bytes for m in models]
    built = []
    schemas = _container.get_all_schemas_with_history
    monkeypatch.setattr(
        _container,
        "get_all_schemas_with_history",
        lambda: built.append(1) or schemas(),
    )
    again = [
        export_onnx(m.estimator, m.X_holdout, m.task, features=m.features, classes=m.classes)[0]
        for m in models
    ]
    assert built == []  # read from the shared table, not rebuilt

    def graph(data: bytes) -> bytes:
        model = onnx.load_from_string(data)
        model.graph.name = ""  # skl2onnx names each graph with a fresh uuid
        return model.SerializeToString()

    assert [graph(b) for b in again] == [graph(b) for b in first]
