"""The training core: quality on known data sets, task inference, refusals, determinism."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.pipeline import Pipeline

from shared.ml.algorithms import ALGORITHMS, tasks_for
from shared.ml.pipeline import prepare_frame
from shared.ml.serialize import UntrustedModelError, dump_skops, load_skops
from shared.ml.train import (
    TrainedModel,
    TrainingError,
    _split,
    infer_task,
    train_model,
    validate_spec,
)

SMALL = {"random_forest": {"n_estimators": 10}, "gradient_boosting": {"n_estimators": 20}}
SMALL |= {"hist_gradient_boosting": {"max_iter": 20}, "isolation_forest": {"n_estimators": 10}}


def mixed_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "count": rng.integers(0, 50, n),
            "city": pd.Series(rng.choice(["paris", "lyon", "nice"], n), dtype="string"),
            "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
            "member": pd.Series(rng.random(n) > 0.5, dtype="boolean"),
            "day": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "region": rng.choice(["eu", "us"], n),
        }
    )
    df.loc[::9, "x"] = np.nan
    df.loc[::11, "city"] = pd.NA
    df.loc[::13, "member"] = pd.NA
    signal = df["x"].fillna(0) + (df["city"] == "paris").astype(float) + rng.normal(size=n) * 0.3
    df["label"] = np.where(signal > 0.3, "yes", "no")
    df["amount"] = df["x"].fillna(0) * 10 + df["count"] + rng.normal(size=n)
    return df


def test_breast_cancer_random_forest_is_accurate() -> None:
    df = load_breast_cancer(as_frame=True).frame
    model = train_model(
        df, target="target", features=None, task=None, algorithm="random_forest", params={}
    )
    assert model.task == "classification"
    assert model.primary_metric == "accuracy"
    assert model.metrics["accuracy"] >= 0.93
    assert set(model.metrics) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    assert model.classes == [0, 1]
    assert model.n_train + model.n_holdout == len(df)
    assert model.n_holdout == pytest.approx(0.2 * len(df), abs=1)
    assert all(isinstance(v, float) for v in model.metrics.values())


def test_diabetes_gradient_boosting_explains_variance() -> None:
    df = load_diabetes(as_frame=True).frame
    model = train_model(
        df, target="target", features=None, task=None, algorithm="gradient_boosting", params={}
    )
    assert model.task == "regression"
    assert model.primary_metric == "rmse"
    assert set(model.metrics) == {"mae", "rmse", "r2"}
    assert model.metrics["r2"] >= 0.35
    assert model.classes is None


def test_isolation_forest_flags_injected_outliers() -> None:
    rng = np.random.default_rng(1)
    normal = rng.normal(size=(400, 3))
    outliers = rng.uniform(8, 12, size=(20, 3)) * rng.choice([-1, 1], size=(20, 3))
    df = pd.DataFrame(np.vstack([normal, outliers]), columns=["a", "b", "c"])
    model = train_model(
        df,
        target=None,
        features=None,
        task=None,
        algorithm="isolation_forest",
        params={"n_estimators": 25, "contamination": 0.05},
    )
    assert model.task == "anomaly"
    assert model.primary_metric is None
    assert 0.0 < model.metrics["anomaly_rate"] <= 0.2
    assert model.metrics["score_p05"] <= model.metrics["score_p50"] <= model.metrics["score_p95"]
    flagged = model.estimator.predict(df.iloc[400:])
    assert np.mean(flagged == -1) >= 0.9  # the injected points are the ones flagged


def test_an_anomaly_model_scores_its_rows_once_for_metrics_parity_and_plots(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One pass over every row gives the plots their scores and the metrics and the ONNX
    parity check the holdout's (it was a holdout pass, then another over every row)."""
    from sklearn.ensemble import IsolationForest

    from shared.ml.metrics import holdout_metrics
    from shared.ml.plots import plot_data

    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.normal(size=(500, 3)), columns=["a", "b", "c"])
    passes: list[int] = []
    score_samples = IsolationForest.score_samples

    def counted(self: Any, X: Any) -> Any:
        passes.append(len(X))
        return score_samples(self, X)

    monkeypatch.setattr(IsolationForest, "score_samples", counted)
    model = train_model(
        df, target=None, features=None, task=None, algorithm="isolation_forest", params={}
    )
    data = plot_data(model, df)
    assert passes == [500]
    monkeypatch.setattr(IsolationForest, "score_samples", score_samples)
    X = prepare_frame(df, model.features)
    every_row = model.estimator.score_samples(X)
    np.testing.assert_array_equal(model.row_scores, every_row)
    assert model.onnx_parity["verified"] and model.onnx_bytes is not None
    fresh = holdout_metrics("anomaly", model.estimator, model.X_holdout, None)
    assert model.metrics == fresh
    counts, _ = np.histogram(every_row, bins=40)
    assert data["anomaly_score_histogram"]["counts"] == counts.tolist()


@pytest.mark.parametrize(("algorithm", "task"), [(a, t) for a in ALGORITHMS for t in tasks_for(a)])
def test_every_algorithm_trains_and_packages(algorithm: str, task: str) -> None:
    df = mixed_frame()
    target = {"classification": "label", "regression": "amount", "anomaly": None}[task]
    exclude = [c for c in ("label", "amount") if c != target]
    model = train_model(
        df,
        target=target,
        features=None,
        task=task,
        algorithm=algorithm,
        params=SMALL.get(algorithm, {}),
        exclude=[*exclude, "region"],
    )
    assert (model.task, model.algorithm) == (task, algorithm)
    assert [f["name"] for f in model.features] == ["x", "count", "city", "tier", "member"]
    assert [f["dtype"] for f in model.features] == ["number", "number", "string", "string", "bool"]
    json.dumps([model.params, model.features, model.classes, model.metrics, model.onnx_parity])
    assert model.params.get("random_state", 42) == 42
    restored = load_skops(model.skops_bytes)  # the allow-list covers every algorithm
    X = prepare_frame(df.head(50), model.features)
    np.testing.assert_array_equal(restored.predict(X), model.estimator.predict(X))


def test_effective_params_merge_defaults_and_spec() -> None:
    df = mixed_frame()
    model = train_model(
        df,
        target="label",
        features=["x", "count"],
        task=None,
        algorithm="random_forest",
        params={"max_depth": 4},
        seed=7,
    )
    assert model.params["max_depth"] == 4
    assert model.params["n_jobs"] == 1
    assert model.params["n_estimators"] == 100
    assert model.params["random_state"] == 7
    assert model.features == [
        {"name": "x", "dtype": "number"},
        {"name": "count", "dtype": "number"},
    ]


def _number_steps(model: TrainedModel) -> dict:
    preprocess = model.estimator.named_steps["preprocess"]
    return dict(preprocess.named_transformers_["number"].named_steps)


def test_linear_models_scale_numbers_and_trees_do_not() -> None:
    df = mixed_frame()
    spec = {"target": "label", "features": ["x"], "task": None}
    linear = train_model(df, algorithm="logistic_regression", params={}, **spec)
    forest = train_model(df, algorithm="random_forest", params={"n_estimators": 5}, **spec)
    assert "scale" in _number_steps(linear)
    assert "scale" not in _number_steps(forest)
    assert linear.params["max_iter"] == 1000


def test_same_seed_same_model() -> None:
    df = mixed_frame()
    kwargs = {"target": "label", "features": None, "task": None, "exclude": ["amount"]}
    first = train_model(df, algorithm="random_forest", params={"n_estimators": 10}, **kwargs)
    again = train_model(df, algorithm="random_forest", params={"n_estimators": 10}, **kwargs)
    assert first.metrics == again.metrics
    assert first.profile == again.profile
    np.testing.assert_array_equal(
        first.estimator.predict_proba(_prepared(df, first)),
        again.estimator.predict_proba(_prepared(df, again)),
    )


def test_split_is_seeded_and_stratified_when_possible() -> None:
    y = np.array(["a"] * 80 + ["b"] * 20)
    train, holdout = _split(100, y, "classification", 0.2, seed=3)
    assert sorted(np.concatenate([train, holdout])) == list(range(100))
    assert (y[holdout] == "b").sum() == 4  # the class shares are kept
    again, _ = _split(100, y, "classification", 0.2, seed=3)
    np.testing.assert_array_equal(train, again)
    lonely = np.array(["a"] * 99 + ["b"])  # a class with one row cannot be stratified
    assert len(_split(100, lonely, "classification", 0.2, seed=3)[1]) == 20


def _prepared(df: pd.DataFrame, model: TrainedModel) -> pd.DataFrame:
    return prepare_frame(df, model.features)


def test_rows_without_target_are_dropped_and_bool_targets_keep_their_labels() -> None:
    df = mixed_frame()
    df["flag"] = pd.Series(df["x"] > 0, dtype="boolean")
    df.loc[:4, "flag"] = pd.NA
    spec = {"target": "flag", "features": ["x", "city"], "task": None}
    model = train_model(df, algorithm="random_forest", params={"n_estimators": 10}, **spec)
    assert model.task == "classification"
    assert model.classes == [False, True]
    assert model.n_train + model.n_holdout == len(df) - 5
    assert model.profile["target"]["categories"].keys() == {"true", "false"}


# --- task inference -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (None, "anomaly"),
        (pd.Series(["a", "b", "a"]), "classification"),
        (pd.Series(["a", "b"], dtype="category"), "classification"),
        (pd.Series([True, False]), "classification"),
        (pd.Series([0, 1, 2, 1] * 5), "classification"),
        (pd.Series([0.0, 1.0, np.nan]), "classification"),  # integers read with gaps
        (pd.Series(range(21)), "regression"),
        (pd.Series([0.5, 1.0, 2.0]), "regression"),
    ],
)
def test_task_inference(values: pd.Series | None, task: str) -> None:
    assert infer_task(values) == task


# --- refusals -----------------------------------------------------------------------------


def _train(df: pd.DataFrame, **overrides: Any) -> None:
    spec = {"target": "label", "features": None, "task": None, "algorithm": "random_forest"}
    spec |= {"params": {"n_estimators": 5}, "exclude": ["amount"]}
    train_model(df, **(spec | overrides))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"params": {"n_trees": 5}}, "n_trees"),
        ({"params": {"n_estimators": "many"}}, "n_estimators"),
        ({"algorithm": "linear_regression"}, "does not do classification"),
        ({"algorithm": "isolation_forest"}, "does not do classification"),
        ({"algorithm": "svm"}, "Unknown algorithm 'svm'"),
        ({"task": "clustering"}, "Unknown task"),
        ({"features": ["x", "nope"]}, "nope"),
        ({"target": "nope"}, "'nope'"),
        ({"features": ["x", "day"]}, "Datetime feature(s) are not supported: day"),
        ({"features": ["x", "label"]}, "cannot also be a feature"),
        ({"task": "regression"}, "numeric target"),
        ({"task": "anomaly", "algorithm": "isolation_forest"}, "leave the target unset"),
        ({"target": None, "task": "classification"}, "needs a target"),
        ({"holdout_fraction": 1.0}, "holdout_fraction"),
    ],
)
def test_bad_specs_raise_training_error(overrides: dict, message: str) -> None:
    with pytest.raises(TrainingError) as err:
        _train(mixed_frame(), **overrides)
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_single_class_and_too_few_rows_are_refused() -> None:
    df = mixed_frame()
    with pytest.raises(TrainingError, match="single class"):
        _train(df.assign(label="yes"))
    with pytest.raises(TrainingError, match="Too few"):
        _train(df.head(9))
    with pytest.raises(TrainingError, match="Too few"):
        _train(df.assign(label=[None] * 295 + ["a", "b"] * 2 + ["a"]))


# --- validate_spec --------------------------------------------------------------------------

COLUMNS = {
    "x": "float64",
    "count": "int64",
    "city": "string",
    "tier": "category",
    "member": "bool",
    "day": "datetime",
    "region": "string",
    "label": "string",
    "amount": "float64",
}


def _validate(**overrides: Any) -> None:
    spec = {"target": "label", "features": None, "task": None, "algorithm": "random_forest"}
    spec |= {"params": {}, "partition_by": "region"}
    validate_spec(COLUMNS, **(spec | overrides))


def test_validate_spec_accepts_good_specs() -> None:
    _validate()
    _validate(target="amount", algorithm="ridge", params={"alpha": 0.5})
    _validate(target="count", algorithm="logistic_regression")  # integers may be classes
    _validate(target="count", algorithm="linear_regression")  # ... or a quantity
    _validate(target=None, algorithm="isolation_forest", partition_by=None)
    _validate(features=["x", "tier", "member"], partition_by=["region", "city"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"partition_by": "shop"}, "Partition column(s) not in the dataset: shop"),
        ({"features": ["x", "colour"]}, "colour"),
        ({"target": "price"}, "'price'"),
        ({"algorithm": "ridge"}, "does not do classification"),
        ({"target": "city", "task": "regression"}, "numeric target"),
        ({"target": "day"}, "datetime"),
        ({"params": {"depth": 3}}, "depth"),
        ({"params": {"max_depth": -1}}, "max_depth"),
        ({"target": None, "algorithm": "random_forest"}, "does not do anomaly"),
    ],
)
def test_validate_spec_refuses(overrides: dict, message: str) -> None:
    with pytest.raises(TrainingError) as err:
        _validate(**overrides)
    assert message in str(err.value)


# --- skops ----------------------------------------------------------------------------------


class Shady(TransformerMixin, BaseEstimator):
    def fit(self, X: Any, y: Any = None) -> Shady:
        return self

    def transform(self, X: Any) -> Any:
        return X


def test_skops_refuses_types_outside_the_allow_list() -> None:
    data = dump_skops(Pipeline([("shady", Shady())]).fit(np.zeros((2, 1))))
    with pytest.raises(UntrustedModelError, match="Shady"):
        load_skops(data)


def test_stored_params_hold_no_deprecation_placeholders() -> None:
    from sklearn.linear_model import LogisticRegression

    from shared.ml.algorithms import public_params

    raw = LogisticRegression().get_params(deep=False)
    assert "deprecated" in raw.values()  # what scikit-learn reports for an unset parameter
    params = public_params(LogisticRegression(C=0.5))
    assert "deprecated" not in params.values() and params["C"] == 0.5
    assert set(params) == {k for k, v in raw.items() if v != "deprecated"}


def test_skops_files_are_written_compact_and_load_the_same() -> None:
    import io
    import zipfile

    import numpy as np
    from sklearn.ensemble import IsolationForest

    from shared.ml.serialize import dump_skops, load_skops

    X = np.random.default_rng(0).normal(size=(200, 3))
    model = IsolationForest(n_estimators=10, random_state=0).fit(X)
    data = dump_skops(model)
    schema = zipfile.ZipFile(io.BytesIO(data)).read("schema.json").decode()
    assert "\n" not in schema and ": " not in schema  # no indentation, no spaces
    np.testing.assert_array_equal(load_skops(data).decision_function(X), model.decision_function(X))


def test_threads_fit_in_parallel_and_store_the_same_model() -> None:
    """TRAINING_THREADS: n_jobs for the fit only; the stored model and its predictions are
    those of the one-thread fit, and a spec's own n_jobs is left alone."""
    df = mixed_frame()
    kwargs = {"target": "label", "features": None, "task": None, "exclude": ["amount"]}
    rf = {"algorithm": "random_forest", "params": {"n_estimators": 20}}
    one = train_model(df, **rf, **kwargs)
    two = train_model(df, **rf, **kwargs, threads=2)
    assert two.estimator[-1].n_jobs is None and two.params.get("n_jobs") is None
    assert two.onnx_parity["verified"] and two.metrics == one.metrics
    np.testing.assert_array_equal(
        one.estimator.predict_proba(_prepared(df, one)),
        two.estimator.predict_proba(_prepared(df, two)),
    )
    own = {"algorithm": "random_forest", "params": {"n_estimators": 20, "n_jobs": 1}}
    assert train_model(df, **own, **kwargs, threads=2).estimator[-1].n_jobs == 1
