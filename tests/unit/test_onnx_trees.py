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

from shared.ml import onnx_tree_groups
from shared.ml.onnx_export import _session
from shared.ml.onnx_tree_groups import tree_groups
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
    # One node per group of trees (skl2onnx's own converters: one node or more per tree).
    groups = tree_groups([e.tree_ for e in model.estimators_])  # type: ignore[attr-defined]
    assert len(tree_nodes) == len(groups)
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


@pytest.fixture()
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """A node budget of a few trees, so these small forests become several nodes."""
    monkeypatch.setattr(onnx_tree_groups, "NODES_PER_ENSEMBLE", 300)


@pytest.mark.parametrize(
    "y",
    [
        Y_MULTI,
        np.array(["a", "b", "c", "d"])[Y_MULTI],
        (X[:, 0] > 0).astype(int),
        np.where(X[:, 0] > 0, "yes", "no"),
        X[:, 0] > 0,
    ],
    ids=["4 int", "4 str", "2 int", "2 str", "bool"],
)
def test_a_forest_in_several_nodes_matches_predict_proba_and_predict(small_groups, y) -> None:
    model = RandomForestClassifier(n_estimators=15, random_state=0).fit(X, y)
    assert len(tree_groups([e.tree_ for e in model.estimators_])) > 1
    label, proba = _run(model, {id(model): {"zipmap": False}})
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    expected = model.predict(X)
    assert np.array_equal(np.asarray(label).astype(expected.dtype), expected)


def test_a_binary_forest_in_several_nodes_breaks_ties_like_argmax(small_groups) -> None:
    y = (X[:, 0] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=4, max_depth=2, random_state=0).fit(X, y)
    onnx_tree_groups.NODES_PER_ENSEMBLE = 4  # one tree per node
    label, proba = _run(model, {id(model): {"zipmap": False}})
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)
    assert np.array_equal(np.asarray(label), model.predict(X))


def test_regressors_and_isolation_forests_in_several_nodes_match(small_groups) -> None:
    model = RandomForestRegressor(n_estimators=15, random_state=0).fit(X, Y_REG)
    (variable,) = _run(model)
    np.testing.assert_allclose(np.ravel(variable), model.predict(X), rtol=1e-4, atol=1e-4)
    model = IsolationForest(n_estimators=30, max_features=0.5, random_state=0).fit(X)
    assert len(tree_groups([e.tree_ for e in model.estimators_])) > 2
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
    from onnx import NodeProto, helper

    from shared.ml.onnx_trees import _set_attribute

    node = NodeProto(op_type="TreeEnsembleRegressor")
    _set_attribute(node, "first", [1] * 70)
    _set_attribute(node, "a", value)
    assert list(node.attribute) == [
        helper.make_attribute("first", [1] * 70),
        helper.make_attribute("a", value),
    ]
