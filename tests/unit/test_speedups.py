"""scikit-learn's per-tree costs replaced by equivalents (shared.ml.speedups): the same
answers, the same fitted models, and scikit-learn's own functions back on uninstall."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sklearn.ensemble._bagging
from sklearn import base
from sklearn.utils import all_estimators, validation

from shared.ml import algorithms as algos
from shared.ml import seeding, speedups
from shared.ml import train as train_module
from shared.ml.train import train_model
from tests.unit.test_skops_dump import _CASES, _assert_same_archive, _frame, _plain_skops

OWN_PARAM_NAMES = base.BaseEstimator.__dict__["_get_param_names"]
OWN_PROBE = validation._nw_into_df_or_series
OWN_SEEDING = validation.check_random_state


@pytest.fixture
def stock() -> Iterator[None]:
    """scikit-learn's own functions, then the replacements back as the process had them."""
    speedups.uninstall()
    assert not speedups.installed()
    yield
    speedups.install()


def test_install_replaces_and_uninstall_restores(stock: None) -> None:
    speedups.install()
    assert speedups.installed()
    assert base.BaseEstimator.__dict__["_get_param_names"] is not OWN_PARAM_NAMES
    assert validation._nw_into_df_or_series is not OWN_PROBE
    assert sklearn.ensemble._bagging.check_random_state is seeding.check_random_state
    speedups.uninstall()
    assert base.BaseEstimator.__dict__["_get_param_names"] is OWN_PARAM_NAMES
    assert validation._nw_into_df_or_series is OWN_PROBE
    assert sklearn.ensemble._bagging.check_random_state is OWN_SEEDING
    assert not speedups.installed()


def _estimator_classes() -> list[type]:
    return [cls for _, cls in all_estimators()]


def test_every_estimators_parameter_names_are_scikit_learns(stock: None) -> None:
    classes = _estimator_classes()
    assert len(classes) > 150  # every estimator scikit-learn lists, not a sample
    expected = {cls: OWN_PARAM_NAMES.__func__(cls) for cls in classes}
    speedups.install()
    for cls in classes:
        assert cls._get_param_names() == expected[cls], cls
        assert cls._get_param_names() == expected[cls], cls  # remembered: the same again


def test_parameter_names_are_a_fresh_list_each_time(stock: None) -> None:
    from sklearn.ensemble import IsolationForest

    speedups.install()
    first = IsolationForest._get_param_names()
    first.append("not_a_parameter")
    assert "not_a_parameter" not in IsolationForest._get_param_names()
    assert "not_a_parameter" not in IsolationForest().get_params()


def test_a_subclass_with_its_own_constructor_has_its_own_names(stock: None) -> None:
    from sklearn.ensemble import IsolationForest

    class Wider(IsolationForest):
        def __init__(self, *, n_estimators: int = 100, extra: int = 1) -> None:
            super().__init__(n_estimators=n_estimators)
            self.extra = extra

    class Same(IsolationForest):
        pass

    speedups.install()
    assert IsolationForest._get_param_names() == OWN_PARAM_NAMES.__func__(IsolationForest)
    assert Wider._get_param_names() == ["extra", "n_estimators"]
    assert Same._get_param_names() == IsolationForest._get_param_names()


def test_a_constructor_with_varargs_is_refused_as_scikit_learn_does(stock: None) -> None:
    class Loose(base.BaseEstimator):
        def __init__(self, *args: Any) -> None:
            self.args = args

    with pytest.raises(RuntimeError) as theirs:
        Loose._get_param_names()
    speedups.install()
    for _ in range(2):  # refused every time, not remembered
        with pytest.raises(RuntimeError) as ours:
            Loose._get_param_names()
        assert str(ours.value) == str(theirs.value)


class _Frameish:
    """Not an ndarray: asked of narwhals as before."""

    def __init__(self, data: Any) -> None:
        self.data = data


@pytest.mark.parametrize(
    "value",
    [
        np.zeros((3, 2)),
        np.zeros(3, dtype=np.float32),
        np.ma.masked_array([1.0, 2.0]),
        np.asmatrix(np.eye(2)),
        [[1.0, 2.0]],
        pd.DataFrame({"a": [1, 2]}),
        pd.Series([1, 2]),
        _Frameish([1]),
    ],
    ids=["ndarray", "1d", "masked", "matrix", "list", "dataframe", "series", "object"],
)
def test_the_dataframe_probe_answers_as_scikit_learns(value: Any, stock: None) -> None:
    expected = OWN_PROBE(value)
    speedups.install()
    assert validation._nw_into_df_or_series(value) is expected


def test_an_ndarray_is_answered_without_asking_narwhals(
    stock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Any] = []
    speedups.install()
    monkeypatch.setitem(speedups._stock, "probe", lambda x: asked.append(x) or False)
    validation._nw_into_df_or_series(np.zeros(4))
    assert asked == []
    validation._nw_into_df_or_series(pd.DataFrame({"a": [1]}))
    assert len(asked) == 1


def test_replacements_that_answer_differently_are_not_used(
    stock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(speedups, "_checked", None)
    monkeypatch.setattr(speedups, "_same_answers", lambda: False)
    speedups.install()
    assert base.BaseEstimator.__dict__["_get_param_names"] is OWN_PARAM_NAMES
    assert validation._nw_into_df_or_series is OWN_PROBE
    speedups.install()  # decided once
    assert validation._nw_into_df_or_series is OWN_PROBE
    seeding.uninstall()
    monkeypatch.undo()
    speedups.uninstall()


def test_the_check_compares_with_scikit_learns_answers(stock: None) -> None:
    speedups._stock.update(param_names=OWN_PARAM_NAMES, probe=OWN_PROBE)
    try:
        assert speedups._same_answers()
        speedups._stock["probe"] = lambda x: True  # a narwhals that calls arrays frames
        assert not speedups._same_answers()
    finally:
        speedups._stock.clear()
        speedups._param_names.clear()


def _train(algorithm: str, task: str) -> Any:
    frame = _frame()
    target = {"classification": "label", "regression": "valeur", "anomaly": None}[task]
    estimator = algos.make_estimator(algorithm, task, seed=0)
    params = {"n_estimators": 8} if "n_estimators" in estimator.get_params() else {}
    return train_model(
        frame,
        target=target,
        features=["température", "salle", "ouvert"],
        task=task,
        algorithm=algorithm,
        params=params,
        seed=11,
    )


@pytest.mark.parametrize(("algorithm", "task"), _CASES)
def test_every_algorithm_fits_the_same_model_as_scikit_learn_as_shipped(
    algorithm: str, task: str, stock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "sklearn_speedups", lambda: None)
        theirs = _train(algorithm, task)
    assert not speedups.installed()  # it really ran scikit-learn as shipped
    ours = _train(algorithm, task)
    assert speedups.installed()
    # Every fitted attribute (each tree's nodes, thresholds and values) is the same.
    _assert_same_archive(_plain_skops(ours.estimator), _plain_skops(theirs.estimator))
    X = ours.X_holdout
    np.testing.assert_array_equal(ours.estimator.predict(X), theirs.estimator.predict(X))
    assert ours.metrics == theirs.metrics
    assert ours.onnx_parity == theirs.onnx_parity


@pytest.mark.filterwarnings("ignore::FutureWarning")  # deprecated estimators, built anyway
def test_get_params_and_clone_work_on_every_estimator(stock: None) -> None:
    speedups.install()
    for cls in _estimator_classes():
        required = [
            p
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD and p.name != "self"
        ]
        if required:  # meta-estimators need an estimator to be built
            continue
        estimator = cls()
        assert sorted(estimator.get_params(deep=False)) == OWN_PARAM_NAMES.__func__(cls)
        assert base.clone(estimator).get_params(deep=False).keys() == (
            estimator.get_params(deep=False).keys()
        )


def test_a_check_that_cannot_run_keeps_scikit_learns_functions(
    stock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> bool:
        raise AttributeError("a scikit-learn without _get_param_names")

    monkeypatch.setattr(speedups, "_checked", None)
    monkeypatch.setattr(speedups, "_same_answers", broken)
    speedups.install()  # training goes on, as shipped
    assert base.BaseEstimator.__dict__["_get_param_names"] is OWN_PARAM_NAMES
    assert validation._nw_into_df_or_series is OWN_PROBE
    seeding.uninstall()
    monkeypatch.undo()
    speedups.uninstall()
