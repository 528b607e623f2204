"""Forests as several ``TreeEnsemble*`` nodes of a bounded size, combined by ``Sum``.

onnxruntime walks every tree of an ensemble node for one row before the next row. A
100-tree forest of deep trees (400k nodes, about 13 MB of node structures) then misses the
cache on nearly every step: 10,000 rows took 3x scikit-learn's time, which walks one tree
for all rows. Several smaller nodes run one after the other over all the rows, each one's
nodes staying in cache: the same 10,000 rows in about scikit-learn's time, the same
numbers (benchmarks/large_batches.py). A forest of small trees stays one node, so small
models keep their graph (and their single-row latency).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Nodes per TreeEnsemble node: about 1 MB of onnxruntime's node structures.
NODES_PER_ENSEMBLE = 32_768


def constant(scope: Any, container: Any, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    unique = scope.get_unique_variable_name(name)
    tensor = numpy_helper.from_array(value, unique)
    container.add_initializer(unique, tensor.data_type, list(value.shape), value.ravel().tolist())
    return unique


def tree_groups(trees: list[Any]) -> list[list[int]]:
    """Consecutive trees, as few per group as keeps a group's nodes within
    ``NODES_PER_ENSEMBLE`` (one tree at least)."""
    groups: list[list[int]] = [[]]
    size = 0
    for index, tree in enumerate(trees):
        count = int(tree.node_count)
        if groups[-1] and size + count > NODES_PER_ENSEMBLE:
            groups.append([])
            size = 0
        groups[-1].append(index)
        size += count
    return groups


def combine_classes(
    scope: Any, container: Any, operator: Any, partials: list[str], classes: Any, integer: bool
) -> None:
    """Probabilities = the groups' shares summed; label = the first class of largest
    probability (argmax, as predict).

    A two-class node writes only p1's weights and answers [1 - p1, p1] for its share: the
    second columns are summed, and p0 = 1 - p1, as one node would answer."""
    from onnx import TensorProto

    probabilities = operator.outputs[1].full_name
    two = len(classes) == 2
    total = scope.get_unique_variable_name("scores_sum") if two else probabilities
    container.add_node("Sum", partials, total, name=scope.get_unique_operator_name("Sum"))
    if two:
        p1, p0 = scope.get_unique_variable_name("p1"), scope.get_unique_variable_name("p0")
        container.add_node(
            "Slice",
            [
                total,
                constant(scope, container, "starts", np.array([1], np.int64)),
                constant(scope, container, "ends", np.array([2], np.int64)),
                constant(scope, container, "axes", np.array([1], np.int64)),
            ],
            p1,
            name=scope.get_unique_operator_name("Slice"),
        )
        one = constant(scope, container, "one", np.array([1.0], np.float32))
        container.add_node("Sub", [one, p1], p0, name=scope.get_unique_operator_name("Sub"))
        container.add_node(
            "Concat",
            [p0, p1],
            probabilities,
            axis=1,
            name=scope.get_unique_operator_name("Concat"),
        )
    best = scope.get_unique_variable_name("best_class")
    container.add_node(
        "ArgMax",
        probabilities,
        best,
        axis=1,
        keepdims=0,
        name=scope.get_unique_operator_name("ArgMax"),
    )
    names = scope.get_unique_variable_name("classes")
    if integer:
        container.add_initializer(
            names, TensorProto.INT64, [len(classes)], [int(c) for c in classes]
        )
    else:
        container.add_initializer(
            names, TensorProto.STRING, [len(classes)], [str(c).encode() for c in classes]
        )
    container.add_node(
        "Gather",
        [names, best],
        operator.outputs[0].full_name,
        axis=0,
        name=scope.get_unique_operator_name("Gather"),
    )
