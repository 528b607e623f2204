"""Prediction by entity id: each entity's latest features, looked up by key, not scanned.

The earlier system answered ``/inference?customer_id=...`` from a feature table. Here a
model names a feature dataset and its key column (``PUT /models/{name}/entities``); the
index is built once from that dataset into a keyed Parquet layout in Blob::

    entities/{model}/index.json          what was indexed (dataset, key, order_by, counts)
    entities/{model}/b{000..N-1}.parquet  one bucket per hash(id) % N, one row per entity

One pass over the dataset in chunks keeps, per id, the row with the largest ``order_by``
value (a timestamp, say) or, without one, the last row in file order. A lookup hashes the
id, reads that one bucket (a few hundred KB for a million entities; cached per instance
by the bucket's ETag-free build id) and finds the row in a dict. A rebuild writes a new
build id, so an instance never mixes two builds. pyarrow and pandas load on first use.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.errors import AppError, NotFound, ValidationFailed
from shared.names import check_name
from shared.prediction.body import OnlineRequest
from shared.prediction.schemas import (
    EntityIndexInfo,
    EntityIndexRequest,
    EntityPrediction,
    EntityPredictRequest,
    EntityPredictResponse,
    PredictRequest,
)
from shared.storage_deadline import map_in_threads

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from shared.datasets.store import DatasetStore

MAX_ID_LENGTH = 256
CACHED_BUCKETS = 64


class EntityNotFound(AppError):
    status, code, title = 404, "ENTITY_NOT_FOUND", "Entity not found"


def bucket_of(entity_id: str, buckets: int) -> int:
    """Stable across processes and Python versions (``hash()`` is salted per process)."""
    digest = hashlib.blake2b(entity_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def entity_key(value: Any) -> str | None:
    """Ids as text: 42, 42.0 and "42" are the same entity; missing ids are skipped."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value)
    return text if text and len(text) <= MAX_ID_LENGTH else None


def _bucket_count(entities: int) -> int:
    # ~4,000 entities a bucket, between 1 and 1,024 buckets: small reads, few blobs.
    return max(1, min(1024, -(-entities // 4000)))


class EntityIndex:
    def __init__(
        self, container: ContainerClient, datasets: Any, max_rows: int = 5_000_000
    ) -> None:
        self.container = container
        self._datasets = datasets  # a factory: lookups never build the dataset store
        self.max_rows = max_rows
        self._buckets: OrderedDict[tuple[str, str, int], dict[str, dict[str, Any]]] = OrderedDict()
        self._infos: dict[str, tuple[float, EntityIndexInfo]] = {}
        self._lock = threading.Lock()

    # --- build ------------------------------------------------------------------------------

    def build(self, model: str, body: EntityIndexRequest, by: str) -> EntityIndexInfo:
        import pandas as pd

        check_name(model, "model")
        check_name(body.dataset, "dataset")
        store: DatasetStore = self._datasets()
        view = store.get(body.dataset)  # 404 for an unknown dataset
        columns = {c.name for c in view.columns}
        for field, column in (("key", body.key), ("order_by", body.order_by)):
            if column is not None and column not in columns:
                raise ValidationFailed(
                    f"Dataset '{body.dataset}' has no column '{column}'.",
                    [{"loc": ["body", field], "msg": "not a column", "type": "value_error"}],
                )
        if view.row_count > self.max_rows:
            raise ValidationFailed(
                f"Dataset '{body.dataset}' has {view.row_count} rows; an entity index takes"
                f" at most {self.max_rows} (MAX_ENTITY_INDEX_ROWS)."
            )
        latest: pd.DataFrame | None = None
        position = 0
        for chunk in store.iter_frames(body.dataset):
            chunk = chunk.assign(
                __entity__=chunk[body.key].map(entity_key),
                __row__=range(position, position + len(chunk)),
            )
            position += len(chunk)
            chunk = chunk[chunk["__entity__"].notna()]
            latest = chunk if latest is None else pd.concat([latest, chunk], ignore_index=True)
            latest = self._keep_latest(latest, body.order_by)
        if latest is None or latest.empty:
            raise ValidationFailed(f"Dataset '{body.dataset}' has no row with a '{body.key}'.")
        buckets = _bucket_count(len(latest))
        build = uuid.uuid4().hex[:12]
        latest = latest.assign(__bucket__=[bucket_of(i, buckets) for i in latest["__entity__"]])
        groups = {
            int(b): g.drop(columns=["__bucket__", "__row__"])
            for b, g in latest.groupby("__bucket__")
        }
        # Under the request's storage budget (a plain pool would drop it).
        map_in_threads(lambda b: self._write_bucket(model, build, b, groups.get(b)), range(buckets))
        info = EntityIndexInfo(
            model=model,
            dataset=body.dataset,
            dataset_sha256=view.sha256,
            key=body.key,
            order_by=body.order_by,
            entities=len(latest),
            rows_read=position,
            buckets=buckets,
            build=build,
            built_at=datetime.now(UTC),
            built_by=by,
        )
        # The index document goes last: until it is written, lookups use the previous build.
        self.container.upload_blob(
            f"{model}/index.json", info.model_dump_json().encode(), overwrite=True
        )
        self._delete_other_builds(model, build)
        with self._lock:
            self._infos.pop(model, None)
        return info

    @staticmethod
    def _keep_latest(frame: Any, order_by: str | None) -> Any:
        keys = ["__row__"] if order_by is None else [order_by, "__row__"]
        ordered = frame.sort_values(keys, kind="stable", na_position="first")
        return ordered.drop_duplicates("__entity__", keep="last")

    def _write_bucket(self, model: str, build: str, bucket: int, frame: Any) -> None:
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        if frame is None:
            return  # an empty bucket: a lookup that lands here finds nothing
        table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        self.container.upload_blob(
            f"{model}/{build}/b{bucket:04d}.parquet", sink.getvalue(), overwrite=True
        )

    def _delete_other_builds(self, model: str, build: str) -> None:
        for blob in self.container.list_blobs(name_starts_with=f"{model}/"):
            parts = blob.name.split("/")
            if len(parts) == 3 and parts[1] != build:
                with contextlib.suppress(ResourceNotFoundError):
                    self.container.delete_blob(blob.name)

    # --- lookup -----------------------------------------------------------------------------

    def info(self, model: str, max_age_seconds: float = 5.0) -> EntityIndexInfo:
        import time

        check_name(model, "model")
        now = time.monotonic()
        hit = self._infos.get(model)
        if hit and now - hit[0] < max_age_seconds:
            return hit[1]
        try:
            raw = self.container.download_blob(f"{model}/index.json").readall()
        except ResourceNotFoundError:
            raise NotFound(
                f"{model} has no entity index: PUT /models/{model}/entities names its feature"
                " dataset and key.",
                code="ENTITY_INDEX_NOT_FOUND",
            ) from None
        info = EntityIndexInfo.model_validate_json(raw)
        self._infos[model] = (now, info)
        return info

    def lookup(self, model: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each id's feature row; 404 naming the ids the index does not hold."""
        info = self.info(model)
        found: dict[str, dict[str, Any]] = {}
        for entity_id in ids:
            bucket = self._bucket(model, info, bucket_of(entity_id, info.buckets))
            row = bucket.get(entity_id)
            if row is not None:
                found[entity_id] = row
        missing = [i for i in ids if i not in found]
        if missing:
            shown = ", ".join(repr(i[:60]) for i in missing[:10])
            raise EntityNotFound(
                f"No entity {shown} in the index of {model} (built from dataset"
                f" '{info.dataset}', key '{info.key}').",
                extra={"missing_ids": missing[:100]},
            )
        return found

    def _bucket(self, model: str, info: EntityIndexInfo, bucket: int) -> dict[str, dict]:
        key = (model, info.build, bucket)
        with self._lock:
            hit = self._buckets.get(key)
            if hit is not None:
                self._buckets.move_to_end(key)
                return hit
        rows = self._read_bucket(model, info, bucket)
        with self._lock:
            self._buckets[key] = rows
            while len(self._buckets) > CACHED_BUCKETS:
                self._buckets.popitem(last=False)
        return rows

    def _read_bucket(self, model: str, info: EntityIndexInfo, bucket: int) -> dict[str, dict]:
        import io

        import pyarrow.parquet as pq

        try:
            data = self.container.download_blob(
                f"{model}/{info.build}/b{bucket:04d}.parquet"
            ).readall()
        except ResourceNotFoundError:
            return {}
        records = pq.read_table(io.BytesIO(data)).to_pylist()
        return {str(r.pop("__entity__")): r for r in records}

    def delete(self, model: str) -> None:
        check_name(model, "model")
        names = [b.name for b in self.container.list_blobs(name_starts_with=f"{model}/")]
        if not names:
            raise NotFound(f"{model} has no entity index.", code="ENTITY_INDEX_NOT_FOUND")
        for name in sorted(names, key=lambda n: n.endswith("index.json"), reverse=True):
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(name)
        with self._lock:
            self._infos.pop(model, None)


def json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """Feature rows as JSON values (timestamps as ISO text)."""
    out = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        out[name] = value
    return json.loads(json.dumps(out, default=str))


class EntityPredictions:
    """Look the entities up, then predict them through the ordinary online path."""

    def __init__(self, index: EntityIndex, service: Any) -> None:
        self.index = index
        self.service = service  # PredictionService: split, counters and log apply as usual

    def predict(
        self, name: str, body: EntityPredictRequest, request_id: str
    ) -> EntityPredictResponse:
        ids = [entity_key(i) for i in body.ids]
        bad = [i for i, key in enumerate(ids) if key is None]
        if bad:
            raise ValidationFailed(
                "Entity ids must be non-empty text or numbers of at most"
                f" {MAX_ID_LENGTH} characters.",
                [
                    {"loc": ["body", "ids", i], "msg": "not a valid id", "type": "value_error"}
                    for i in bad[:20]
                ],
            )
        unique = list(dict.fromkeys(k for k in ids if k is not None))
        rows = self.index.lookup(name, unique)
        loaded = self.service.predictor.loader.load(name, version=body.version, alias=body.alias)
        partition_by = loaded.model.get("partition_by") if loaded.format == "partitioned" else None
        groups: dict[str | None, list[str]] = {}
        for key in unique:
            part = entity_key(rows[key].get(partition_by)) if partition_by else None
            groups.setdefault(part, []).append(key)
        answers: dict[str, EntityPrediction] = {}
        versions: set[int] = set()
        classes = None
        for part, keys in groups.items():
            request = PredictRequest(
                records=[rows[k] for k in keys],
                version=body.version,
                alias=body.alias,
                partition=part,
                return_probabilities=body.return_probabilities,
            )
            result, _ = self.service.predict(
                name, OnlineRequest.of(request), routing_key=keys[0], request_id=request_id
            )
            versions.add(result.version)
            classes = result.classes or classes
            for i, key in enumerate(keys):
                answers[key] = EntityPrediction(
                    id=key,
                    prediction=result.predictions[i],
                    probabilities=result.probabilities[i] if result.probabilities else None,
                    score=result.scores[i] if result.scores else None,
                    partition=part,
                    features=json_safe(rows[key]) if body.include_features else None,
                )
        return EntityPredictResponse(
            model=name,
            versions=sorted(versions),
            classes=classes,
            results=[answers[k] for k in ids if k is not None],
            request_id=request_id,
        )
