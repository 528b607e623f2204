"""Tree ensembles regrouped for batch throughput, checked against the original on real rows.

onnxruntime evaluates a ``TreeEnsemble*`` node row by row over *all* its trees. A random
forest of 100 deep trees is ~400k nodes (~15 MB): every row walks through memory far
larger than the CPU cache, and batch scoring runs 3-4x slower than scikit-learn, which
walks tree by tree. Splitting the ensemble into blocks of a few trees (each block small
enough to stay in L2) and summing the blocks' raw scores gives the same numbers at
cache speed. Only the unambiguous shapes are rewritten (no post-transform, no base
values on classifiers: random forests, extra trees, isolation forests' regressors);
anything else is left as it is.

The rewrite never serves on trust: :class:`BatchSession` runs both graphs on the first
rows it is given and keeps the blocked one only when every output agrees; otherwise it
serves the original session for the rest of the process. ``onnx`` is imported lazily
(worker side only).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.observability import get_logger

if TYPE_CHECKING:
    from shared.prediction.runtime import Servable

log = get_logger("batch")

# ~8k nodes per block: onnxruntime's node structs plus leaf weights of one block stay
# within a 1-2 MB L2. Measured on a 100-tree forest (~4k nodes a tree): 1-2 trees a block
# is fastest; larger blocks fall back towards the unblocked speed.
BLOCK_NODES = 8_192
# Models whose ensembles hold fewer tree nodes in all fit in cache already: not worth a rewrite.
MIN_NODES = 4 * BLOCK_NODES
# Below this many serialized bytes a model cannot hold MIN_NODES nodes: skip parsing it.
MIN_BYTES = 512 * 1024
VERIFY_ROWS = 2_048
# Blocked sums differ from the original only by float32 summation order.
ABS_TOLERANCE = 1e-5
REL_TOLERANCE = 1e-5

_TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def _value(attribute: Any) -> Any:
    from onnx import AttributeProto, helper, numpy_helper

    # Large repeated fields straight into numpy: no list of 400k Python numbers to keep.
    if attribute.type == AttributeProto.FLOATS:
        return np.fromiter(attribute.floats, dtype=np.float32, count=len(attribute.floats))
    if attribute.type == AttributeProto.INTS:
        return np.fromiter(attribute.ints, dtype=np.int64, count=len(attribute.ints))
    value = helper.get_attribute_value(attribute)
    if hasattr(value, "dims"):  # a *_as_tensor attribute
        return numpy_helper.to_array(value)
    return value


def _fill_attribute(attribute: Any, name: str, value: np.ndarray, tensor: bool) -> None:
    """Fill a node's new attribute in place from a numpy array (no protobuf copy)."""
    from onnx import AttributeProto, numpy_helper

    attribute.name = name
    if tensor:
        attribute.type = AttributeProto.TENSOR
        attribute.t.CopyFrom(numpy_helper.from_array(value, name))
    elif value.dtype == object:
        attribute.type = AttributeProto.STRINGS
        attribute.strings.extend(v if isinstance(v, bytes) else str(v).encode() for v in value)
    elif value.dtype.kind == "f":
        attribute.type = AttributeProto.FLOATS
        attribute.floats.extend(value.tolist())
    else:
        attribute.type = AttributeProto.INTS
        attribute.ints.extend(value.tolist())


def _blocks(tree_nodes: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive groups of tree ids with at most ``budget`` nodes each (>= 1 tree)."""
    ids, counts = np.unique(tree_nodes, return_counts=True)
    groups: list[list[int]] = [[]]
    size = 0
    for tree, count in zip(ids.tolist(), counts.tolist(), strict=True):
        if groups[-1] and size + count > budget:
            groups.append([])
            size = 0
        groups[-1].append(tree)
        size += count
    return [np.asarray(g, dtype=np.int64) for g in groups]


def _nonzero_base(attrs: dict[str, Any]) -> bool:
    for key in ("base_values", "base_values_as_tensor"):
        if key in attrs and np.any(np.asarray(attrs[key], dtype=float) != 0):
            return True
    return False


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_tree_ensemble(node: Any) -> bool:
    return node.op_type in _TREE_OPS and node.domain == "ai.onnx.ml"


def _node_count(node: Any) -> int:
    """Tree nodes in an ensemble node, read without converting its attributes."""
    for attribute in node.attribute:
        if attribute.name == "nodes_treeids":
            return len(attribute.ints)
    return 0


class _Rewriter:
    """Rewrites one graph in place; ``changed`` says whether any node was split."""

    def __init__(self, graph: Any, budget: int) -> None:
        self.graph = graph
        self.budget = budget
        self.changed = False
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"__batch_blocks_{self._count}_{hint}"

    def const(self, array: np.ndarray, hint: str) -> tuple[str, Any]:
        from onnx import helper, numpy_helper

        out = self.name(hint)
        return out, helper.make_node(
            "Constant", [], [out], value=numpy_helper.from_array(array, out)
        )

    def rewrite(self) -> None:
        ensembles = [n for n in self.graph.node if _is_tree_ensemble(n)]
        # The exporter already splits a large forest into ensembles of about 1 MB
        # (shared.ml.onnx_tree_groups): the forest as a whole decides, not each ensemble.
        if sum(_node_count(n) for n in ensembles) < MIN_NODES:
            return
        nodes = []
        for node in self.graph.node:
            replacement = None
            if _is_tree_ensemble(node):
                replacement = self._split(node)
            if replacement is None:
                nodes.append(node)
            else:
                nodes.extend(replacement)
                self.changed = True
        del self.graph.node[:]
        self.graph.node.extend(nodes)

    def _split(self, node: Any) -> list[Any] | None:
        attrs = {a.name: _value(a) for a in node.attribute}
        if _text(attrs.get("post_transform", "NONE")) != "NONE":
            return None
        trees = np.asarray(attrs["nodes_treeids"], dtype=np.int64)
        classifier = node.op_type == "TreeEnsembleClassifier"
        prefix = "class_" if classifier else "target_"
        if classifier:
            labels = attrs.get("classlabels_int64s")
            if labels is None or len(labels) == 0:
                labels = [_text(s) for s in attrs.get("classlabels_strings", [])]
            n_targets = len(labels)
            if _nonzero_base(attrs) or n_targets < 2:
                return None
            weight_classes = set(np.asarray(attrs["class_ids"]).tolist())
            weights = np.asarray(attrs.get("class_weights", attrs.get("class_weights_as_tensor")))
            binary = n_targets == 2 and len(weight_classes) == 1
            if binary and np.any(weights < 0):
                return None  # a margin, not a probability: other label rule
            if n_targets == 2 and not binary:
                return None  # two weighted classes: onnxruntime's label rule differs
        else:
            aggregate = _text(attrs.get("aggregate_function", "SUM"))
            if aggregate not in ("SUM", "AVERAGE"):
                return None
            n_targets = int(attrs.get("n_targets", 1))
        leaf_trees = np.asarray(attrs[f"{prefix}treeids"], dtype=np.int64)
        blocks = _blocks(trees, self.budget)
        if len(blocks) < 2:
            return None
        # Sorted by tree once, a block's nodes and leaves are two contiguous slices.
        node_order = np.argsort(trees, kind="stable")
        leaf_order = np.argsort(leaf_trees, kind="stable")
        node_trees, leaf_tree_ids = trees[node_order], leaf_trees[leaf_order]
        columns: dict[str, tuple[np.ndarray, bool, bool]] = {}  # name -> (array, leaf, tensor)
        for key, value in attrs.items():
            tensor = key.endswith("_as_tensor")
            if key.startswith("nodes_"):
                array = np.asarray(value, dtype=object if key == "nodes_modes" else None)
                columns[key] = (array[node_order], False, tensor)
            elif key.startswith(prefix) and key != "classlabels_strings":
                target_key = "target_" + key[len(prefix) :]
                columns[target_key] = (np.asarray(value)[leaf_order], True, tensor)
        out_nodes: list[Any] = []
        partials = []
        for block in blocks:
            first, last = int(block[0]), int(block[-1])
            nodes = slice(*np.searchsorted(node_trees, [first, last + 1]).tolist())
            leaves = slice(*np.searchsorted(leaf_tree_ids, [first, last + 1]).tolist())
            out_nodes.append(self._block(node, columns, nodes, leaves, n_targets))
            partials.append(out_nodes[-1].output[0])
        from onnx import helper

        total = self.name("sum")
        out_nodes.append(helper.make_node("Sum", partials, [total]))
        if classifier:
            out_nodes += self._classifier_outputs(node, total, labels, binary, weight_classes)
            return out_nodes
        result = total
        if aggregate == "AVERAGE":
            count, const = self.const(np.array(len(np.unique(trees)), dtype=np.float32), "n")
            result = self.name("avg")
            out_nodes += [const, helper.make_node("Div", [total, count], [result])]
        if _nonzero_base(attrs):
            raw = attrs.get("base_values", attrs.get("base_values_as_tensor"))
            base, const = self.const(np.asarray(raw, dtype=np.float32), "base")
            shifted = self.name("base")
            out_nodes += [const, helper.make_node("Add", [result, base], [shifted])]
            result = shifted
        out_nodes.append(helper.make_node("Identity", [result], [node.output[0]]))
        return out_nodes

    def _block(
        self,
        node: Any,
        columns: dict[str, tuple[np.ndarray, bool, bool]],
        nodes: slice,
        leaves: slice,
        n_targets: int,
    ) -> Any:
        from onnx import helper

        out = self.name("part")
        block_node = helper.make_node(
            "TreeEnsembleRegressor",
            [node.input[0]],
            [out],
            domain="ai.onnx.ml",
            n_targets=n_targets,
            aggregate_function="SUM",
            post_transform="NONE",
        )
        for key, (array, leaf, tensor) in columns.items():
            _fill_attribute(
                block_node.attribute.add(), key, array[leaves if leaf else nodes], tensor
            )
        return block_node

    def _classifier_outputs(
        self,
        node: Any,
        total: str,
        labels: Sequence[Any],
        binary: bool,
        weight_classes: set[int],
    ) -> list[Any]:
        from onnx import TensorProto, helper

        label_out, proba_out = node.output[0], node.output[1]
        strings = isinstance(labels[0], str)
        table = np.array(labels, dtype=object if strings else np.int64)
        label_table, label_const = self.const(table, "labels")
        nodes = [label_const]
        if binary:
            (cid,) = weight_classes
            index, index_const = self.const(np.array([cid], dtype=np.int64), "cid")
            one, one_const = self.const(np.array([1.0], dtype=np.float32), "one")
            half, half_const = self.const(np.array(0.5, dtype=np.float32), "half")
            flat, flat_const = self.const(np.array([-1], dtype=np.int64), "flat")
            pos, neg, pos_flat, above, chosen = (
                self.name(h) for h in ("pos", "neg", "pf", "gt", "i")
            )
            nodes += [
                index_const,
                one_const,
                half_const,
                flat_const,
                helper.make_node("Gather", [total, index], [pos], axis=1),
                helper.make_node("Sub", [one, pos], [neg]),
                helper.make_node("Concat", [neg, pos], [proba_out], axis=1),
                helper.make_node("Reshape", [pos, flat], [pos_flat]),
                # onnxruntime's binary rule: the positive label when its score > 0.5.
                helper.make_node("Greater", [pos_flat, half], [above]),
                helper.make_node("Cast", [above], [chosen], to=TensorProto.INT64),
            ]
        else:
            chosen = self.name("argmax")
            nodes += [
                helper.make_node("Identity", [total], [proba_out]),
                helper.make_node("ArgMax", [total], [chosen], axis=1, keepdims=0),
            ]
        nodes.append(helper.make_node("Gather", [label_table, chosen], [label_out], axis=0))
        return nodes


def block_trees(onnx_bytes: bytes, budget: int | None = None) -> bytes | None:
    """The model with its large tree ensembles split into cache-sized blocks, or None
    when there is nothing worth splitting (or onnx cannot parse it)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx ships with the ML stack
        return None
    try:
        model = onnx.load_from_string(onnx_bytes)
        rewriter = _Rewriter(model.graph, budget or BLOCK_NODES)
        rewriter.rewrite()
    except Exception:  # noqa: BLE001 - an unusual graph simply is not rewritten
        log.warning("could not block the model's trees; scoring with the original graph")
        return None
    if not rewriter.changed:
        return None
    return model.SerializeToString()


def _ties(outputs: Sequence[Any]) -> np.ndarray | None:
    """Rows whose top two class scores are within the tolerance (any [n, k>=2] output)."""
    for out in outputs:
        array = np.asarray(out)
        if array.dtype.kind == "f" and array.ndim == 2 and array.shape[1] >= 2:
            top2 = np.sort(array, axis=1)[:, -2:]
            return (top2[:, 1] - top2[:, 0]) <= 2 * (ABS_TOLERANCE + REL_TOLERANCE)
    return None


def agree(expected: Sequence[Any], got: Sequence[Any]) -> bool:
    """Every output equal: numbers within the tolerance, labels except on near-ties."""
    if len(expected) != len(got):
        return False
    ties = _ties(expected)
    for want, have in zip(expected, got, strict=True):
        a, b = np.asarray(want), np.asarray(have)
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc":
            scale = max(1.0, float(np.max(np.abs(a), initial=0.0)))
            if not np.all(np.abs(a - b) <= ABS_TOLERANCE + REL_TOLERANCE * scale):
                return False
            continue
        differ = (a != b).reshape(len(a), -1).any(axis=1) if a.size else np.zeros(0, bool)
        # Summation order may only decide a label where the scores tie.
        if differ.any() and (ties is None or len(ties) != len(differ) or np.any(differ & ~ties)):
            return False
    return True


class BatchSession:
    """An onnxruntime session for batch work: the blocked graph once it has given the
    same answers as the original on real rows, the original until then (or for good)."""

    def __init__(self, session: Any, blocked: Any | None = None, label: str = "") -> None:
        self.session = session
        # What run() serves, and a blocked session waiting for its check on real rows.
        self._serving = session
        self._candidate = blocked
        self._lock = threading.Lock()
        self.label = label

    @classmethod
    def from_bytes(
        cls, onnx_bytes: bytes, session: Any | None = None, threads: int = 1, label: str = ""
    ) -> BatchSession:
        """``session``: an already loaded session of the same bytes (the loader's cache).

        The rewrite runs before scoring starts, not beside it: it holds the GIL for most of
        its half second (protobuf copies and conversions), so on a thread of its own it
        slowed the first batches by as much as it saved (measured with
        benchmarks/batch_scoring.py)."""
        from concurrent.futures import ThreadPoolExecutor

        from shared.registry.formats import load_onnx

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-load") as pool:
            # onnxruntime builds the original session while the rewrite runs.
            pending = pool.submit(load_onnx, onnx_bytes, threads) if session is None else None
            blocked_bytes = block_trees(onnx_bytes) if len(onnx_bytes) >= MIN_BYTES else None
            original = pending.result() if pending is not None else session
        blocked = None
        if blocked_bytes is not None:
            try:
                blocked = load_onnx(blocked_bytes, threads)
            except Exception:  # noqa: BLE001 - onnxruntime refused the rewrite: keep the original
                log.warning("onnxruntime refused the blocked graph", extra={"model": label})
        return cls(original, blocked, label)

    @property
    def blocked(self) -> bool:
        """Whether the blocked graph serves (after verification)."""
        return self._serving is not self.session

    def get_inputs(self) -> Any:
        return self.session.get_inputs()

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def get_modelmeta(self) -> Any:
        return self.session.get_modelmeta()

    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[Any]:
        candidate = self._candidate
        if candidate is not None:
            self._verify(candidate, feed)
        return self._serving.run(output_names, feed)

    def _verify(self, candidate: Any, feed: dict[str, np.ndarray]) -> None:
        with self._lock:
            if self._candidate is not candidate:
                return  # another thread checked it
            sample = {k: v[:VERIFY_ROWS] for k, v in feed.items()}
            expected = self.session.run(None, sample)
            try:
                same = agree(expected, candidate.run(None, sample))
            except Exception:  # noqa: BLE001 - a graph that fails to run is not used
                same = False
            if same:
                self._serving = candidate
            else:
                log.warning(
                    "blocked trees disagree with the original; using the original graph",
                    extra={"model": self.label},
                )
            self._candidate = None


def batch_servable(
    onnx_bytes: bytes,
    features: list[dict[str, str]],
    task: str | None,
    classes: list[Any] | None = None,
    *,
    session: Any | None = None,
    threads: int = 1,
    label: str = "",
) -> Servable:
    """A :class:`Servable` whose session is a :class:`BatchSession` over ``onnx_bytes``."""
    from shared.prediction.runtime import Servable

    batch = BatchSession.from_bytes(onnx_bytes, session, threads, label)
    return Servable(features, task, classes, session=batch)
