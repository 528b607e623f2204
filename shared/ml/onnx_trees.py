"""Tree-ensemble converters for skl2onnx that build the graph from the fitted arrays.

skl2onnx converts a forest node by node in Python, and its IsolationForest converter
emits ~40 ONNX nodes per tree (a 100-tree forest: ~4,000 nodes, whose registration is
quadratic): converting one room's forest took ~15 s and opening the session for the
parity check ~7 s, against a fit of 0.1-0.3 s. The converters here read every tree's
``children_left/right``, ``feature``, ``threshold`` and ``value`` arrays with numpy and
emit one ``TreeEnsemble*`` node per group of trees (see ``onnx_tree_groups``: a single
one for a forest of small trees), summed:

* random forests and extra trees (classifier: mean of the leaves' class fractions;
  regressor: mean of the leaves' values), exactly what ``predict_proba`` / ``predict``
  compute;
* isolation forest: a ``TreeEnsembleRegressor`` whose leaf weight is that leaf's path
  length (depth + c(n_samples) - 1, the numbers scikit-learn itself precomputes), summed
  over trees, then ``-2 ** (-sum / (n_trees * c(max_samples))) - offset_``: the
  ``decision_function``; the label is -1 where it is negative.

The output names, shapes and types are those of skl2onnx's own converters, so the rest of
the platform (the parity check, serving, the batch blocks of ``prediction/batch_onnx.py``)
sees the same contract. Every export is still checked for parity on the holdout before
it is kept. Imported only when exporting (skl2onnx, onnx and scikit-learn are heavy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.ml.onnx_tree_groups import combine_classes, constant, tree_groups

_ML = "ai.onnx.ml"
_LEAF = -1  # children_left of a leaf in scikit-learn's tree arrays


def _node_attributes(trees: list[Any], feature_maps: list[np.ndarray | None]) -> dict[str, Any]:
    """The ``nodes_*`` attributes of every tree, concatenated (tree ids 0..n-1)."""
    tree_ids, node_ids, features, thresholds, modes, true_ids, false_ids, missing = (
        [] for _ in range(8)
    )
    for tree_id, (tree, feature_map) in enumerate(zip(trees, feature_maps, strict=True)):
        left, right = tree.children_left, tree.children_right
        count = len(left)
        leaf = left == _LEAF
        feature = np.where(leaf, 0, tree.feature).astype(np.int64)
        if feature_map is not None:
            feature = np.where(leaf, 0, np.asarray(feature_map, dtype=np.int64)[feature])
        tree_ids.append(np.full(count, tree_id, dtype=np.int64))
        node_ids.append(np.arange(count, dtype=np.int64))
        features.append(feature)
        thresholds.append(np.where(leaf, np.float32(0), _float32_thresholds(tree.threshold)))
        modes.append(np.where(leaf, b"LEAF", b"BRANCH_LEQ"))
        true_ids.append(np.where(leaf, 0, left).astype(np.int64))
        false_ids.append(np.where(leaf, 0, right).astype(np.int64))
        # NaN follows scikit-learn's learned direction (the platform imputes before the
        # trees, so this only matters for a pipeline without imputation).
        go_left = getattr(tree, "missing_go_to_left", None)
        go_left = np.zeros(count, dtype=np.int64) if go_left is None else go_left
        missing.append(np.where(leaf, 0, go_left).astype(np.int64))

    def joined(parts: list[np.ndarray]) -> list[Any]:
        return np.concatenate(parts).tolist()

    return {
        "nodes_treeids": joined(tree_ids),
        "nodes_nodeids": joined(node_ids),
        "nodes_featureids": joined(features),
        "nodes_values": joined(thresholds),
        "nodes_modes": joined(modes),
        "nodes_truenodeids": joined(true_ids),
        "nodes_falsenodeids": joined(false_ids),
        "nodes_missing_value_tracks_true": joined(missing),
    }


def _float32_thresholds(thresholds: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 threshold.

    scikit-learn's trees compare float32 inputs with float64 thresholds; onnxruntime
    compares float32 with float32. Rounding a threshold up would send a value equal to the
    rounded threshold left in ONNX and right in scikit-learn; rounding down never can."""
    rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _leaves(tree: Any) -> np.ndarray:
    return np.flatnonzero(tree.children_left == _LEAF)


def _float_input(scope: Any, operator: Any, container: Any) -> str:
    """The operator's input as float32 (the trees' thresholds are float32)."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import FloatTensorType

    source = operator.inputs[0]
    if isinstance(source.type, FloatTensorType):
        return source.full_name
    cast = scope.get_unique_variable_name("tree_input")
    container.add_node(
        "Cast",
        source.full_name,
        cast,
        to=TensorProto.FLOAT,
        name=scope.get_unique_operator_name("Cast"),
    )
    return cast


def _set_attribute(node: Any, name: str, value: Any) -> None:
    """Append ``onnx.helper.make_attribute(name, value)`` to ``node``: the ensemble's long
    lists are written straight into the node's own AttributeProto, one ``extend`` each,
    without make_attribute's per-element type checks and string encoding in Python (two
    thirds of a 100-tree forest's export) nor a copy of the finished attribute into the
    node (a further quarter of what was left)."""
    from onnx import AttributeProto, helper

    if not isinstance(value, list) or len(value) < 64:
        node.attribute.append(helper.make_attribute(name, value))
        return
    attribute = node.attribute.add()
    attribute.name = name
    first = value[0]
    if isinstance(first, bytes):
        attribute.type = AttributeProto.STRINGS
        attribute.strings.extend(value)
    elif isinstance(first, str):
        attribute.type = AttributeProto.STRINGS
        attribute.strings.extend([v.encode() for v in value])
    elif isinstance(first, float):
        attribute.type = AttributeProto.FLOATS
        attribute.floats.extend(value)
    else:
        attribute.type = AttributeProto.INTS
        attribute.ints.extend(value)


def _add_ensemble(
    container: Any, op_type: str, inputs: Any, outputs: Any, name: str, attributes: dict
) -> None:
    """Add one ``TreeEnsemble*`` node with its attributes set by :func:`_set_attribute`
    (sorted by name, as ``make_node`` orders them)."""
    container.add_node(op_type, inputs, outputs, op_domain=_ML, op_version=1, name=name)
    node = container.nodes[-1]
    if node.op_type != op_type or not node.name.startswith(name):
        raise RuntimeError(f"the {op_type} node was not the last one added")
    for key in sorted(attributes):
        _set_attribute(node, key, attributes[key])


def _estimators(model: Any) -> tuple[list[Any], list[np.ndarray | None]]:
    trees = [estimator.tree_ for estimator in model.estimators_]
    features = getattr(model, "estimators_features_", None)
    if features is None:
        return trees, [None] * len(trees)
    return trees, [np.asarray(f) for f in features]


def _classifier_attributes(
    trees: list[Any], feature_maps: list[np.ndarray | None], written: list[int], n_total: int
) -> dict[str, Any]:
    """Nodes and class weights of ``trees``: each leaf's class fractions / ``n_total`` (the
    forest's tree count), so the node's scores are its share of predict_proba."""
    attributes = _node_attributes(trees, feature_maps)
    tree_ids, node_ids, class_ids, weights = [], [], [], []
    for tree_id, tree in enumerate(trees):
        leaves = _leaves(tree)
        values = tree.value[leaves, 0, :]
        totals = values.sum(axis=1, keepdims=True)
        fractions = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
        tree_ids.append(np.full(leaves.size * len(written), tree_id, dtype=np.int64))
        node_ids.append(np.repeat(leaves, len(written)))
        class_ids.append(np.tile(np.arange(len(written), dtype=np.int64), leaves.size))
        weights.append((fractions[:, written] / n_total).ravel())
    attributes.update(
        class_treeids=np.concatenate(tree_ids).tolist(),
        class_nodeids=np.concatenate(node_ids).tolist(),
        class_ids=np.concatenate(class_ids).tolist(),
        class_weights=np.concatenate(weights).astype(np.float32).tolist(),
        post_transform="NONE",
    )
    return attributes


def convert_forest_classifier(scope: Any, operator: Any, container: Any) -> None:
    """RandomForestClassifier / ExtraTreesClassifier: label + probabilities (no ZipMap)."""
    model = operator.raw_operator
    trees, maps = _estimators(model)
    n_classes = len(model.classes_)
    # Two classes: only the second class's weight, as skl2onnx writes it; onnxruntime then
    # gives p0 = 1 - p1 and the label p1 > 0.5, which breaks a tie as argmax does.
    written = [1] if n_classes == 2 else list(range(n_classes))
    classes = model.classes_
    integer = np.issubdtype(np.asarray(classes).dtype, np.integer)
    integer = integer or np.asarray(classes).dtype == bool
    labels: dict[str, Any] = (
        {"classlabels_int64s": [int(c) for c in classes]}
        if integer
        else {"classlabels_strings": [str(c) for c in classes]}
    )
    source = _float_input(scope, operator, container)
    groups = tree_groups(trees)
    if len(groups) == 1:
        _add_ensemble(
            container,
            "TreeEnsembleClassifier",
            source,
            [operator.outputs[0].full_name, operator.outputs[1].full_name],
            scope.get_unique_operator_name("TreeEnsembleClassifier"),
            {**_classifier_attributes(trees, maps, written, len(trees)), **labels},
        )
        return
    partials = []
    for group in groups:
        attributes = _classifier_attributes(
            [trees[i] for i in group], [maps[i] for i in group], written, len(trees)
        )
        label, scores = (scope.get_unique_variable_name(n) for n in ("group_label", "scores"))
        _add_ensemble(
            container,
            "TreeEnsembleClassifier",
            source,
            [label, scores],
            scope.get_unique_operator_name("TreeEnsembleClassifier"),
            {**attributes, **labels},
        )
        partials.append(scores)
    combine_classes(scope, container, operator, partials, classes, integer)


def _regressor_attributes(
    trees: list[Any],
    feature_maps: list[np.ndarray | None],
    leaf_values: Any,
    aggregate: str,
) -> dict[str, Any]:
    """A one-target ``TreeEnsembleRegressor``: every tree's nodes, and per leaf the value
    ``leaf_values(tree index, tree, leaf ids)`` gives, summed or averaged over the trees."""
    attributes = _node_attributes(trees, feature_maps)
    tree_ids, node_ids, weights = [], [], []
    for tree_id, tree in enumerate(trees):
        leaves = _leaves(tree)
        tree_ids.append(np.full(leaves.size, tree_id, dtype=np.int64))
        node_ids.append(leaves)
        weights.append(leaf_values(tree_id, tree, leaves))
    attributes.update(
        n_targets=1,
        target_treeids=np.concatenate(tree_ids).tolist(),
        target_nodeids=np.concatenate(node_ids).tolist(),
        target_ids=[0] * int(sum(t.size for t in tree_ids)),
        target_weights=np.concatenate(weights).astype(np.float32).tolist(),
        aggregate_function=aggregate,
        post_transform="NONE",
    )
    return attributes


def _summed_regressors(
    scope: Any,
    container: Any,
    source: str,
    output: str,
    trees: list[Any],
    feature_maps: list[np.ndarray | None],
    leaf_values: Any,
) -> None:
    """``output`` = the sum over ``trees`` of ``leaf_values(tree index, tree, leaves)``:
    one ``TreeEnsembleRegressor`` per group of ``tree_groups``, then their ``Sum``."""
    groups = tree_groups(trees)
    partials = []
    for group in groups:
        partial = output if len(groups) == 1 else scope.get_unique_variable_name("partial")
        attributes = _regressor_attributes(
            [trees[i] for i in group],
            [feature_maps[i] for i in group],
            lambda position, tree, leaves, group=group: leaf_values(group[position], tree, leaves),
            "SUM",
        )
        _add_ensemble(
            container,
            "TreeEnsembleRegressor",
            source,
            partial,
            scope.get_unique_operator_name("TreeEnsembleRegressor"),
            attributes,
        )
        partials.append(partial)
    if len(groups) > 1:
        container.add_node("Sum", partials, output, name=scope.get_unique_operator_name("Sum"))


def convert_forest_regressor(scope: Any, operator: Any, container: Any) -> None:
    """RandomForestRegressor / ExtraTreesRegressor: the mean of the trees' leaf values."""
    model = operator.raw_operator
    trees, maps = _estimators(model)
    n_trees = len(trees)
    _summed_regressors(
        scope,
        container,
        _float_input(scope, operator, container),
        operator.outputs[0].full_name,
        trees,
        maps,
        lambda _, tree, leaves: tree.value[leaves, 0, 0] / n_trees,
    )


def _path_lengths(model: Any, tree_index: int, tree: Any) -> np.ndarray:
    """Per node: depth + c(n_node_samples) - 1, as scikit-learn's score_samples adds it."""
    precomputed_depths = getattr(model, "_decision_path_lengths", None)
    precomputed_average = getattr(model, "_average_path_length_per_tree", None)
    if precomputed_depths is not None and precomputed_average is not None:
        depths = np.asarray(precomputed_depths[tree_index], dtype=float)
        average = np.asarray(precomputed_average[tree_index], dtype=float)
    else:  # older scikit-learn: compute what it would have stored
        from sklearn.ensemble._iforest import _average_path_length

        depths = np.asarray(tree.compute_node_depths(), dtype=float)
        average = _average_path_length(tree.n_node_samples)
    return depths + average - 1.0


def convert_isolation_forest(scope: Any, operator: Any, container: Any) -> None:
    """IsolationForest: label (-1 outlier / 1 inlier, int64) and decision_function."""
    from onnx import TensorProto
    from sklearn.ensemble._iforest import _average_path_length

    model = operator.raw_operator
    trees, maps = _estimators(model)

    def name(base: str) -> str:
        return scope.get_unique_variable_name(base)

    def op(kind: str) -> str:
        return scope.get_unique_operator_name(kind)

    depth_sum = name("path_length_sum")
    _summed_regressors(
        scope,
        container,
        _float_input(scope, operator, container),
        depth_sum,
        trees,
        maps,
        lambda i, tree, leaves: _path_lengths(model, i, tree)[leaves],
    )
    denominator = float(len(trees) * _average_path_length([model.max_samples_])[0])
    # One training sample: scikit-learn scores 1 (2 ** 0); a factor of 0 does the same.
    factor = -1.0 / denominator if denominator else 0.0
    exponent, power, score = name("exponent"), name("power"), operator.outputs[1].full_name
    container.add_node(
        "Mul",
        [depth_sum, constant(scope, container, "factor", np.array([factor], np.float32))],
        exponent,
        name=op("Mul"),
    )
    container.add_node(
        "Pow",
        [constant(scope, container, "two", np.array([2.0], np.float32)), exponent],
        power,
        name=op("Pow"),
    )
    # decision_function = score_samples - offset_ = -(2 ** exponent) - offset_
    negated = name("score_samples")
    container.add_node("Neg", power, negated, name=op("Neg"))
    offset = constant(scope, container, "offset", np.array([-model.offset_], np.float32))
    container.add_node("Add", [negated, offset], score, name=op("Add"))
    outlier, outlier_int = name("is_outlier"), name("is_outlier_int")
    zero = constant(scope, container, "zero", np.array([0.0], np.float32))
    container.add_node("Less", [score, zero], outlier, name=op("Less"))
    container.add_node("Cast", outlier, outlier_int, to=TensorProto.INT64, name=op("Cast"))
    # label = 1 - 2 * is_outlier: -1 for outliers, 1 for inliers.
    doubled = name("doubled")
    minus_two = constant(scope, container, "minus_two", np.array([-2], np.int64))
    container.add_node("Mul", [outlier_int, minus_two], doubled, name=op("Mul"))
    one = constant(scope, container, "one", np.array([1], np.int64))
    container.add_node("Add", [doubled, one], operator.outputs[0].full_name, name=op("Add"))


_REGISTERED = False


def register_tree_converters() -> None:
    """Replace skl2onnx's converters for these estimators by the array-built ones (once)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.ensemble_shapes import (
        calculate_tree_classifier_output_shapes,
        calculate_tree_regressor_output_shapes,
    )
    from skl2onnx.shape_calculators.isolation_forest import (
        calculate_isolation_forest_output_shapes,
    )
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        IsolationForest,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    classifier_options = {"zipmap": [True, False, "columns"], "nocl": [True, False]}
    for model, alias in (
        (RandomForestClassifier, "SklearnRandomForestClassifier"),
        (ExtraTreesClassifier, "SklearnExtraTreesClassifier"),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_tree_classifier_output_shapes,
            convert_forest_classifier,
            options=classifier_options,
            overwrite=True,
        )
    for model, alias in (
        (RandomForestRegressor, "SklearnRandomForestRegressor"),
        (ExtraTreesRegressor, "SklearnExtraTreesRegressor"),
    ):
        update_registered_converter(
            model,
            alias,
            calculate_tree_regressor_output_shapes,
            convert_forest_regressor,
            overwrite=True,
        )
    update_registered_converter(
        IsolationForest,
        "SklearnIsolationForest",
        calculate_isolation_forest_output_shapes,
        convert_isolation_forest,
        options={"score_samples": [True, False]},
        overwrite=True,
    )
    _REGISTERED = True
