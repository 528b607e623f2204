"""The batch scoring engine without storage: typing, routing, output schema, ONNX blocks."""

from __future__ import annotations

import io
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.prediction.batch.engine import (
    SingleVersion,
    default_keys,
    merge_reasons,
    score_parquet,
    score_table,
)
from shared.prediction.batch.features import typed_frame
from shared.prediction.batch.files import (
    OutputWriter,
    RangeReader,
    concat_parquet,
    csv_chunks,
    csv_frames,
    prefetch,
)
from shared.prediction.batch.onnx_blocks import batch_servable
from shared.prediction.runtime import Outputs, Servable

FEATURES = [
    {"name": "co2", "dtype": "number"},
    {"name": "kind", "dtype": "string"},
    {"name": "open", "dtype": "bool"},
]


# --- typing a chunk ------------------------------------------------------------------------


def test_a_frame_chunk_becomes_columns_with_the_online_typing() -> None:
    frame = pd.DataFrame(
        {
            "co2": [400.0, None, 3, 7.5],
            "kind": ["a", None, "b", "c"],
            "open": [True, False, None, True],
            "room": ["r1", "r2", "r3", "r4"],
        }
    )
    typed = typed_frame(frame, FEATURES)
    cols = typed.columns
    assert cols.names == ["co2", "kind", "open"] and cols.n_rows == 4
    np.testing.assert_array_equal(cols.values[0], [400.0, np.nan, 3.0, 7.5])
    assert cols.values[1].dtype == object and cols.values[1].tolist() == ["a", "", "b", "c"]
    np.testing.assert_array_equal(cols.values[2], [1.0, 0.0, np.nan, 1.0])
    assert typed.valid.all() and not typed.reasons


def test_untypeable_values_fail_their_rows_with_a_reason() -> None:
    # CSV text columns: numbers and the usual boolean spellings are accepted, not the rest.
    frame = pd.DataFrame(
        {
            "co2": ["410", " 3.5 ", "lots", None, "", "1e3"],
            "kind": [1, 2, None, 4, 5, 6],  # non-text for a string feature: str() of it
            "open": ["yes", "FALSE", "maybe", "1", None, "sometimes"],
        },
        dtype=object,
    )
    typed = typed_frame(frame, FEATURES)
    np.testing.assert_array_equal(typed.valid, [True, True, False, True, True, False])
    assert typed.reasons == Counter(
        {"feature 'co2' must be a number": 1, "feature 'open' must be a boolean": 1}
    )
    np.testing.assert_array_equal(
        typed.columns.values[0][[0, 1, 3, 4, 5]], [410, 3.5, np.nan, np.nan, 1000]
    )
    assert typed.columns.values[1].tolist() == ["1", "2", "", "4", "5", "6"]
    np.testing.assert_array_equal(typed.columns.values[2][[0, 1, 3, 4]], [1, 0, 1, np.nan])


def test_a_bool_column_is_not_a_number_and_a_missing_feature_column_raises() -> None:
    frame = pd.DataFrame({"co2": [True, None], "kind": ["a", "b"], "open": [0, 2]})
    typed = typed_frame(frame, FEATURES)
    assert not typed.valid.any()
    assert typed.reasons == Counter(
        {"feature 'co2' must be a number": 1, "feature 'open' must be a boolean": 1}
    )
    with pytest.raises(KeyError, match="kind"):
        typed_frame(frame.drop(columns=["kind"]), FEATURES)


# --- routing and output ----------------------------------------------------------------------


class Constant:
    """A fake sub-model: predicts its label, probability p for 'yes', score s."""

    def __init__(
        self, label: Any, p: float, classes: list[Any] | None = None, task: str = "classification"
    ):
        self.label, self.p, self.classes, self.task = label, p, classes, task
        self.features = FEATURES[:1]
        self.seen: list[np.ndarray] = []

    def run(self, cols: Any, with_probabilities: bool) -> Outputs:
        self.seen.append(cols.values[0])
        n = cols.n_rows
        labels = np.array([self.label] * n, dtype=object if isinstance(self.label, str) else None)
        if self.task == "anomaly":
            return Outputs(labels, scores=np.full(n, self.p))
        if self.task == "regression":
            return Outputs(np.full(n, self.p))
        classes = self.classes or ["no", "yes"]
        proba = np.tile([1 - self.p, self.p][: len(classes)], (n, 1))
        return Outputs(labels, proba, classes)


class Partitioned:
    """A fake partitioned model: one Constant per room."""

    def __init__(self, subs: dict[str, Constant], task: str = "classification") -> None:
        self.name, self.version, self.task, self.partition_by = "rooms", 7, task, "room"
        self.features = FEATURES[:1]
        self.subs = subs

    def servable(self, partition: str | None) -> Any:
        return self.subs.get(partition or "")


def rooms_table() -> pa.Table:
    return pa.table(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "room": ["a", "b", "a", "zz", None, "b"],
            "co2": [1.0, 2.0, 3.0, 4.0, 5.0, None],
        }
    )


def test_rows_are_routed_to_their_partition_and_unknown_ones_fail() -> None:
    a, b = Constant("yes", 0.9), Constant("no", 0.2)
    model = Partitioned({"a": a, "b": b})
    result = score_table(rooms_table(), model, ["id", "room"])
    assert result.scored == 4 and result.failed == 2
    assert result.reasons == Counter({"unknown partition 'zz'": 1, "no 'room' value": 1})
    out = result.table.to_pydict()
    assert out["id"] == [1, 2, 3, 6]  # input order, failed rows left out
    assert out["prediction"] == ["yes", "no", "yes", "no"]
    assert out["probability"] == pytest.approx([0.9, 0.8, 0.9, 0.8])
    assert out["model_version"] == [7, 7, 7, 7]
    assert result.table.column_names == ["id", "room", "prediction", "probability", "model_version"]
    np.testing.assert_array_equal(a.seen[0], [1.0, 3.0])  # each sub-model saw its rows only
    np.testing.assert_array_equal(b.seen[0], [2.0, np.nan])


def test_integral_float_partitions_match_integer_manifest_keys() -> None:
    table = pa.table({"room": [3.0, 4.0, None], "co2": [1.0, 2.0, 3.0]})
    model = Partitioned({"3": Constant("yes", 0.6)})
    result = score_table(table, model, ["room"])
    assert result.table.column("room").to_pylist() == [3.0]
    assert result.reasons == Counter({"unknown partition '4'": 1, "no 'room' value": 1})


def test_per_class_probabilities_fill_classes_a_partition_never_saw() -> None:
    model = Partitioned({"a": Constant("x", 0.25, ["x", "y"]), "b": Constant("z", 0.5, ["y", "z"])})
    table = pa.table({"room": ["a", "b"], "co2": [1.0, 2.0]})
    result = score_table(table, model, [], "per_class", classes=["x", "y", "z"])
    out = result.table.to_pydict()
    assert result.table.column_names == [
        "prediction",
        "proba_x",
        "proba_y",
        "proba_z",
        "model_version",
    ]
    assert out["proba_x"] == [0.75, 0.0] and out["proba_y"] == [0.25, 0.5]
    assert out["proba_z"] == [0.0, 0.5]


def test_anomaly_models_add_a_score_and_regressions_only_a_prediction() -> None:
    table = pa.table({"room": ["a", "a"], "co2": [1.0, 2.0]})
    anomaly = Partitioned({"a": Constant(-1, -0.25, task="anomaly")}, task="anomaly")
    out = score_table(table, anomaly, ["room"]).table
    assert out.column_names == ["room", "prediction", "score", "model_version"]
    assert out.column("score").to_pylist() == [-0.25, -0.25]
    regression = Partitioned({"a": Constant(0, 12.5, task="regression")}, task="regression")
    out = score_table(table, regression, []).table
    assert out.column_names == ["prediction", "model_version"]
    assert out.column("prediction").to_pylist() == [12.5, 12.5]


def test_default_keys_are_the_non_feature_columns() -> None:
    model = Partitioned({})
    assert default_keys(["id", "room", "co2", "prediction", "ts"], model) == ["id", "room", "ts"]


def test_reasons_are_capped() -> None:
    reasons: Counter[str] = Counter()
    merge_reasons(reasons, {f"unknown partition '{i}'": 1 for i in range(30)})
    assert len(reasons) == 21 and reasons["other reasons"] == 10


# --- the real engine on an ONNX model ---------------------------------------------------------


@pytest.fixture(scope="module")
def forest():
    """A small platform pipeline (random forest) and its ONNX export."""
    from sklearn.ensemble import RandomForestClassifier

    from shared.ml.onnx_export import export_onnx
    from shared.ml.pipeline import build_pipeline

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "co2": rng.normal(600, 80, 2_000),
            "kind": rng.choice(["a", "b", "c"], 2_000),
            "open": rng.choice([True, False], 2_000),
        }
    )
    y = np.where((frame.co2 > 620) | (frame.kind == "c"), "busy", "calm")
    features = FEATURES
    pipeline = build_pipeline(
        features, RandomForestClassifier(n_estimators=8, random_state=0), scale=False, dense=True
    )
    from shared.ml.pipeline import prepare_frame

    pipeline.fit(prepare_frame(frame, features), y)
    onnx_bytes, info = export_onnx(
        pipeline,
        prepare_frame(frame.head(50), features),
        "classification",
        features=features,
        classes=["busy", "calm"],
    )
    assert onnx_bytes is not None, info
    return pipeline, onnx_bytes


def test_score_parquet_streams_batches_and_matches_scikit_learn(forest) -> None:
    from shared.ml.pipeline import prepare_frame

    pipeline, onnx_bytes = forest
    rng = np.random.default_rng(1)
    n = 5_000
    frame = pd.DataFrame(
        {
            "reading": np.arange(n),
            "co2": rng.normal(600, 80, n),
            "kind": rng.choice(["a", "b", "c", None], n),
            "open": rng.choice([True, False], n),
        }
    )
    source = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), source, row_group_size=1_500)
    model = SingleVersion(
        "m", 3, batch_servable(onnx_bytes, FEATURES, "classification", ["busy", "calm"])
    )
    sink = io.BytesIO()
    writer = OutputWriter(sink)
    stats = score_parquet(io.BytesIO(source.getvalue()), model, writer, batch_rows=700)
    writer.close()
    assert stats.rows_scored == n and stats.rows_failed == 0 and stats.rows_read == n
    out = pq.read_table(io.BytesIO(sink.getvalue()))
    assert out.column_names == ["reading", "prediction", "probability", "model_version"]
    assert out.column("reading").to_pylist() == list(range(n))
    X = prepare_frame(frame, FEATURES)
    assert out.column("prediction").to_pylist() == pipeline.predict(X).tolist()
    np.testing.assert_allclose(
        out.column("probability").to_numpy(), pipeline.predict_proba(X).max(axis=1), atol=1e-5
    )
    # Only some row groups: what a chunk worker reads.
    writer = OutputWriter(io.BytesIO())
    stats = score_parquet(io.BytesIO(source.getvalue()), model, writer, row_groups=[1, 2])
    assert stats.rows_scored == 3_000


def test_a_sklearn_fallback_scores_the_same(forest) -> None:
    pipeline, _ = forest
    servable = Servable(FEATURES, "classification", ["busy", "calm"], estimator=pipeline)
    model = SingleVersion("m", 1, servable)
    table = pa.table({"co2": [500.0, 700.0], "kind": ["a", "c"], "open": [True, None]})
    out = score_table(table, model, []).table
    assert (
        out.column("prediction").to_pylist()
        == pipeline.predict(
            pd.DataFrame({"co2": [500.0, 700.0], "kind": ["a", "c"], "open": [1.0, np.nan]})
        ).tolist()
    )


# --- tree blocking ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_blocked_tree_ensembles_agree_with_the_original(kind: str, monkeypatch) -> None:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    from shared.ml.onnx_export import export_onnx
    from shared.ml.pipeline import build_pipeline
    from shared.prediction.batch import onnx_blocks as batch_onnx
    from shared.registry.formats import load_onnx

    monkeypatch.setattr(batch_onnx, "MIN_NODES", 100)
    monkeypatch.setattr(batch_onnx, "MIN_BYTES", 0)
    monkeypatch.setattr(batch_onnx, "BLOCK_NODES", 300)
    rng = np.random.default_rng(2)
    features = [{"name": f"f{i}", "dtype": "number"} for i in range(4)]
    X = pd.DataFrame(rng.normal(size=(1_500, 4)), columns=[f["name"] for f in features])
    if kind == "regression":
        y, task, classes = X.f0 * 2 + X.f1, "regression", None
        estimator = RandomForestRegressor(n_estimators=12, random_state=0)
    else:
        labels = ["a", "b"] if kind == "binary" else ["a", "b", "c"]
        y = np.array(labels)[np.digitize(X.f0 + X.f1 * X.f2, [0, 1])[:] % len(labels)]
        task, classes = "classification", labels
        estimator = RandomForestClassifier(n_estimators=12, random_state=0)
    pipeline = build_pipeline(features, estimator, scale=False, dense=True).fit(X, y)
    onnx_bytes, _ = export_onnx(pipeline, X.head(20), task, features=features, classes=classes)
    blocked = batch_onnx.block_trees(onnx_bytes)
    assert blocked is not None
    feed = {f["name"]: rng.normal(size=(3_000, 1)).astype(np.float32) for f in features}
    expected = load_onnx(onnx_bytes).run(None, feed)
    got = load_onnx(blocked).run(None, feed)
    assert batch_onnx.agree(expected, got)
    session = batch_onnx.BatchSession.from_bytes(onnx_bytes)
    session.run(None, feed)
    assert session.blocked


def test_a_forest_exported_as_several_ensembles_is_blocked_as_a_whole(monkeypatch) -> None:
    """The exporter already splits a large forest into ensembles of NODES_PER_ENSEMBLE
    nodes; each is below MIN_NODES, the forest is not, and each is still several blocks."""
    from sklearn.ensemble import RandomForestClassifier

    from shared.ml import onnx_tree_groups
    from shared.ml.onnx_export import export_onnx
    from shared.ml.pipeline import build_pipeline
    from shared.prediction.batch import onnx_blocks as batch_onnx
    from shared.registry.formats import load_onnx

    monkeypatch.setattr(onnx_tree_groups, "NODES_PER_ENSEMBLE", 1_000)
    monkeypatch.setattr(batch_onnx, "MIN_NODES", 2_000)
    monkeypatch.setattr(batch_onnx, "MIN_BYTES", 0)
    monkeypatch.setattr(batch_onnx, "BLOCK_NODES", 300)
    rng = np.random.default_rng(3)
    features = [{"name": f"f{i}", "dtype": "number"} for i in range(4)]
    X = pd.DataFrame(rng.normal(size=(2_000, 4)), columns=[f["name"] for f in features])
    y = np.where(X.f0 + X.f1 * X.f2 + rng.normal(0, 0.5, len(X)) > 0, "a", "b")
    forest = RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)
    pipeline = build_pipeline(features, forest, scale=False, dense=True).fit(X, y)
    sizes = [t.tree_.node_count for t in pipeline.named_steps["model"].estimators_]
    assert max(sizes) < 300 < sum(sizes)  # several trees a block, several blocks a node
    onnx_bytes, _ = export_onnx(
        pipeline, X.head(20), "classification", features=features, classes=["a", "b"]
    )
    ensembles = [n for n in _onnx_nodes(onnx_bytes) if n.op_type.startswith("TreeEnsemble")]
    assert len(ensembles) > 1
    assert all(len(_attr(n, "nodes_treeids")) < batch_onnx.MIN_NODES for n in ensembles)
    blocked = batch_onnx.block_trees(onnx_bytes)
    assert blocked is not None
    ensembles_after = [n for n in _onnx_nodes(blocked) if n.op_type.startswith("TreeEnsemble")]
    assert len(ensembles_after) > len(ensembles)
    assert all(len(_attr(n, "nodes_treeids")) <= 300 for n in ensembles_after)
    feed = {f["name"]: rng.normal(size=(3_000, 1)).astype(np.float32) for f in features}
    assert batch_onnx.agree(
        load_onnx(onnx_bytes).run(None, feed), load_onnx(blocked).run(None, feed)
    )
    session = batch_onnx.BatchSession.from_bytes(onnx_bytes)
    session.run(None, feed)
    assert session.blocked


def _onnx_nodes(onnx_bytes: bytes) -> list[Any]:
    import onnx

    return list(onnx.load_from_string(onnx_bytes).graph.node)


def _attr(node: Any, name: str) -> Any:
    import onnx

    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def test_a_blocked_graph_that_disagrees_is_not_used() -> None:
    from shared.prediction.batch.onnx_blocks import BatchSession, agree

    class Fixed:
        def __init__(self, value: float) -> None:
            self.value = value

        def run(self, names: Any, feed: dict) -> list:
            n = len(next(iter(feed.values())))
            return [np.zeros(n, dtype=np.int64), np.full((n, 2), self.value, dtype=np.float32)]

    session = BatchSession(Fixed(0.5), Fixed(0.6))
    out = session.run(None, {"x": np.zeros((10, 1), np.float32)})
    assert not session.blocked and out[1][0, 0] == 0.5
    # Labels may differ only on ties of the scores.
    tie = [np.array([0, 1]), np.array([[0.5, 0.5], [0.2, 0.8]], dtype=np.float32)]
    assert agree(tie, [np.array([1, 1]), tie[1]])
    assert not agree(tie, [np.array([0, 0]), tie[1]])


def test_small_or_unusual_models_are_left_alone(forest) -> None:
    from shared.prediction.batch.onnx_blocks import block_trees

    _, onnx_bytes = forest
    assert block_trees(onnx_bytes) is None  # 8 small trees: nothing worth splitting
    assert block_trees(b"not an onnx model") is None


# --- CSV ranges and the fan-in -------------------------------------------------------------------


def test_csv_chunks_split_on_record_boundaries_only() -> None:
    text = 'id,note\n1,plain\n2,"two\nlines"\n3,"quote "" and, comma"\n4,x\n5,last'
    data = text.encode()
    stream = io.BytesIO(data)
    header_end, chunks = csv_chunks(stream.read, every=2, block=7)  # blocks split records
    assert data[:header_end] == b"id,note\n"
    assert [c[2] for c in chunks] == [2, 2, 1]
    assert chunks[0][0] == header_end and chunks[-1][1] == len(data)
    frames = []
    for start, end, _ in chunks:

        def read_range(offset: int, length: int) -> bytes:
            return data[offset : offset + length]

        stream = io.BufferedReader(RangeReader(data[:header_end], read_range, start, end))
        frames += [t.to_pandas() for t in csv_frames(stream, {"id": "int64", "note": "string"})]
    whole = pd.concat(frames, ignore_index=True)
    assert whole.id.tolist() == [1, 2, 3, 4, 5]
    assert whole.note.tolist() == ["plain", "two\nlines", 'quote " and, comma', "x", "last"]


def test_csv_chunks_of_a_header_only_file() -> None:
    assert csv_chunks(io.BytesIO(b"a,b\n").read) == (4, [])
    assert csv_chunks(io.BytesIO(b"").read) == (0, [])


def test_parts_concatenate_into_one_schema_row_group_by_row_group() -> None:
    def part(table: pa.Table) -> io.BytesIO:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, row_group_size=2)
        buffer.seek(0)
        return buffer

    first = pa.table({"id": pa.array([1, 2, 3], pa.int32()), "prediction": ["a", "b", "a"]})
    second = pa.table(
        {
            "id": pa.array([4], pa.int64()),
            "prediction": ["c"],
            "proba_c": pa.array([0.5]),
        }
    )
    parquet, text = io.BytesIO(), io.BytesIO()
    writer = OutputWriter(parquet, text)
    rows = concat_parquet([part(first), part(second)], writer)
    writer.close()
    assert rows == 4 and writer.rows == 4
    out = pq.read_table(io.BytesIO(parquet.getvalue()))
    assert out.schema.field("id").type == pa.int64()
    assert out.to_pydict() == {
        "id": [1, 2, 3, 4],
        "prediction": ["a", "b", "a", "c"],
        "proba_c": [None, None, None, 0.5],
    }
    assert pq.ParquetFile(io.BytesIO(parquet.getvalue())).metadata.num_row_groups == 3
    assert text.getvalue().decode().splitlines()[0] == '"id","prediction","proba_c"'


def test_an_output_without_rows_still_has_a_schema() -> None:
    sink = io.BytesIO()
    writer = OutputWriter(sink)
    writer.close(pa.schema([("room", pa.string()), ("prediction", pa.null())]))
    assert pq.read_table(io.BytesIO(sink.getvalue())).column_names == ["room", "prediction"]


def test_prefetch_keeps_order_and_raises_the_producers_error() -> None:
    assert list(prefetch(iter(range(50)), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("unreadable")

    with pytest.raises(ValueError, match="unreadable"):
        list(prefetch(broken()))
    stream = prefetch(iter(range(10**6)), depth=1)
    assert next(stream) == 0
    stream.close()  # the producer stops instead of running to the end


def test_the_request_model_refuses_ambiguous_selectors() -> None:
    from pydantic import ValidationError

    from shared.prediction.batch.schemas import BatchScoreRequest

    assert BatchScoreRequest().output_format == "parquet"
    with pytest.raises(ValidationError):
        BatchScoreRequest(model="m", version=1, alias="champion")
    with pytest.raises(ValidationError):
        BatchScoreRequest(version=2)
    assert math.isclose(BatchScoreRequest(model="m", version=2).version or 0, 2)
