"""The array-built tree-ensemble converters reproduce scikit-learn on shapes the training
tests do not reach: several classes, integer labels, extra trees, feature subsets."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)

from shared.ml.onnx_export import _session
from shared.ml.onnx_trees import register_tree_converters

RNG = np.random.default_rng(7)
X = RNG.normal(size=(600, 6)).astype(np.float32)
# Thresholds land between float32 values; these rows sit exactly on some of them.
X[:50] = np.round(X[:50], 1)
Y_MULTI = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5).astype(int) * 2  # 4 classes: 0..3
Y_REG = X[:, 0] * 3 + X[:, 2] ** 2 + RNG.normal(size=len(X)) * 0.1


def _run(model: object, options: dict | None = None) -> list[np.ndarray]:
    register_tree_converters()
    graph = convert_sklearn(
        model,
        initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
        options=options,
        target_opset={"": 21, "ai.onnx.ml": 3},
    )
    tree_nodes = [n for n in graph.graph.node if n.op_type.startswith("TreeEnsemble")]
    assert len(tree_nodes) == 1  # the whole forest is one node, whatever its size
    return _session(graph.SerializeToString()).run(None, {"X": X})


@pytest.mark.parametrize("cls", [RandomForestClassifier, ExtraTreesClassifier])
@pytest.mark.parametrize("labels", ["int", "str"])
def test_forest_classifiers_match_predict_proba(cls: type, labels: str) -> None:
    y = Y_MULTI if labels == "int" else np.array(["a", "b", "c", "d"])[Y_MULTI]
    model = cls(n_estimators=15, random_state=0).fit(X, y)
    label, proba = _run(model, {id(model): {"zipmap": False}})
    expected = model.predict_proba(X)
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    top2 = np.sort(expected, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 1e-4
    assert np.array_equal(np.asarray(label)[decided], model.predict(X)[decided])


def test_binary_classifier_breaks_ties_like_argmax() -> None:
    y = (X[:, 0] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, y)
    label, proba = _run(model, {id(model): {"zipmap": False}})
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    assert np.array_equal(np.asarray(label), model.predict(X))


@pytest.mark.parametrize("cls", [RandomForestRegressor, ExtraTreesRegressor])
def test_forest_regressors_match_predict(cls: type) -> None:
    model = cls(n_estimators=15, random_state=0).fit(X, Y_REG)
    (variable,) = _run(model)
    np.testing.assert_allclose(np.ravel(variable), model.predict(X), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("max_features", [1.0, 0.5])
@pytest.mark.parametrize("contamination", ["auto", 0.05])
def test_isolation_forest_matches_decision_function(
    max_features: float, contamination: object
) -> None:
    model = IsolationForest(
        n_estimators=30, max_features=max_features, contamination=contamination, random_state=0
    ).fit(X)
    label, scores = _run(model)
    np.testing.assert_allclose(np.ravel(scores), model.decision_function(X), atol=1e-5)
    assert np.array_equal(np.ravel(label), model.predict(X))


def test_the_graph_is_valid_onnx() -> None:
    register_tree_converters()
    model = IsolationForest(n_estimators=5, random_state=0).fit(X)
    graph = convert_sklearn(
        model,
        initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
        target_opset={"": 21, "ai.onnx.ml": 3},
    )
    onnx.checker.check_model(graph, full_check=True)


@pytest.mark.parametrize(
    "value",
    [
        list(range(500)),
        np.arange(500, dtype=np.float32).tolist(),
        [b"LEAF", b"BRANCH_LEQ"] * 100,
        ["BRANCH_LEQ", "LEAF"] * 100,
        [0.5, 1.5],  # short lists and scalars go through onnx.helper itself
        "SUM",
        3,
    ],
)
def test_the_fast_attributes_are_the_protos_onnx_helper_builds(value) -> None:
    from onnx import helper

    from shared.ml.onnx_trees import _attribute

    assert _attribute("a", value) == helper.make_attribute("a", value)
