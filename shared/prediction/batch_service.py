"""Batch scoring of the scoring datasets in Blob: start, plan, fan out per chunk, fan in.

``start`` (``POST /predict``) resolves every target (model version x scoring dataset),
404s before anything is queued, records the job and queues a *plan* message. The
planner reads only file footers (Parquet) or scans for record boundaries (CSV) and
queues one *chunk* message per ~:data:`CHUNK_ROWS` rows (whole Parquet row groups, or a
CSV byte range). A chunk worker streams its rows through the engine
(``shared.prediction.batch``) into a part blob ``scored/{model}/{job_id}/part-NNNNN.parquet``;
the chunk that completes a target (ETag counter) queues a *finalize*, which concatenates
the parts row group by row group into ``scored/{model}/{job_id}.parquet`` (and ``.csv``),
deletes the parts and counts the target; the last target ends the job. Every step is
safe to run twice (queue delivery is at-least-once); a chunk that fails every retry is
marked failed by the poison handler and the job ends ``partially_failed``.

Scoring inputs live in container ``scoring`` under ``{dataset}/`` (CSV or Parquet, any
file names, as ADF's Copy activity drops them) and are read with the dataset store's
code (``DatasetStore`` over that container, metadata cached in Table
``ScoringDatasets``).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Literal

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from pydantic import BaseModel, Field, model_validator

from shared import services
from shared.datasets import READ_BLOCK, BlobRangeReader, DatasetBlob, DatasetStore
from shared.errors import AppError, Conflict, NotFound, ValidationFailed
from shared.jobs.queue_job import claim
from shared.names import ALIAS_PATTERN, check_alias, check_name
from shared.observability import get_logger
from shared.prediction.batch_jobs import (
    CHUNK_TERMINAL,
    CHUNKS_TABLE,
    JOBS_TABLE,
    TARGETS_TABLE,
    TERMINAL,
    Chunk,
    ScoringJob,
    ScoringJobStore,
    Target,
)
from shared.prediction.batch_recovery import ScoringRecovery
from shared.settings import get_settings
from shared.tables import iso, utcnow

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    from shared.idempotency import IdempotencyStore
    from shared.prediction.batch import OutputWriter, Scorable
    from shared.prediction.engine import Predictor, Servable
    from shared.registry.loader import LoadedModel, ModelLoader
    from shared.registry.store import ModelRegistry

INPUT_CONTAINER = "scoring"
OUTPUT_CONTAINER = "scored"
SCORING_DATASETS_TABLE = "ScoringDatasets"
QUEUE = "scoring"
# Mirrors shared.prediction.batch.CHUNK_ROWS (that module loads numpy; this one must not).
CHUNK_ROWS = 250_000
MAX_TARGETS = 500
# Staged block size of the output blobs: the memory one open output costs.
BLOCK_BYTES = 8 * 1024 * 1024
CACHED_MODELS = 16
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}

log = get_logger("batch")

OutputFormat = Literal["parquet", "csv", "both"]


class BatchScoreRequest(BaseModel):
    """``POST /predict``: what to score. Empty body: every model with a scoring dataset."""

    model: str | None = Field(
        default=None, description="Model to score with; null: every model with a scoring dataset."
    )
    dataset: str | None = Field(
        default=None, description="Scoring dataset (container 'scoring'); null: the model's name."
    )
    version: int | None = Field(default=None, ge=1, description="Default: champion, else latest.")
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN)
    output_format: OutputFormat = "parquet"
    key_columns: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Input columns copied to the output; default: every non-feature column.",
    )
    probabilities: Literal["predicted", "per_class"] = Field(
        default="predicted",
        description="Classifiers: 'probability' of the predicted class, or 'proba_<class>'.",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> BatchScoreRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give either 'version' or 'alias', not both")
        if self.version is not None and self.model is None and self.dataset is None:
            raise ValueError("'version' needs a 'model': version numbers are per model")
        return self


# --- blob I/O ------------------------------------------------------------------------------


class BlockBlobWriter(io.RawIOBase):
    """A write-only stream into a block blob: staged in :data:`BLOCK_BYTES` blocks, visible
    only after :meth:`commit` (a failed run leaves nothing behind but uncommitted blocks,
    which Azure drops after a week)."""

    def __init__(self, container: ContainerClient, name: str, content_type: str) -> None:
        super().__init__()
        self._blob = container.get_blob_client(name)
        self._content_type = content_type
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._written = 0
        self.name = name

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        self._written += len(view)
        while len(self._buffer) >= BLOCK_BYTES:
            self._stage(bytes(self._buffer[:BLOCK_BYTES]))
            del self._buffer[:BLOCK_BYTES]
        return len(view)

    def _stage(self, data: bytes) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        self._blob.stage_block(block_id, data)
        self._blocks.append(block_id)

    def commit(self) -> None:
        from azure.storage.blob import BlobBlock, ContentSettings

        if self._buffer or not self._blocks:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        self._blob.commit_block_list(
            [BlobBlock(block_id=b) for b in self._blocks],
            content_settings=ContentSettings(content_type=self._content_type),
        )


def _blob_of(container: ContainerClient, name: str) -> DatasetBlob:
    props = container.get_blob_client(name).get_blob_properties()
    return DatasetBlob(
        path=name,
        format="parquet",
        size=props.size,
        etag=(props.etag or "").strip('"'),
        last_modified=props.last_modified,
    )


def _reader(container: ContainerClient, blob: DatasetBlob) -> io.BufferedReader:
    return io.BufferedReader(BlobRangeReader(container, blob), READ_BLOCK)


# --- models --------------------------------------------------------------------------------


class RegistryModel:
    """A registered version as the engine's ``BatchModel``; sub-models load on first use."""

    def __init__(self, predictor: Predictor, loader: ModelLoader, name: str, version: int):
        self.predictor = predictor
        self.loader = loader
        self.name = name
        self.version = version
        self._lock = threading.Lock()
        self._subs: dict[str, Scorable | None] = {}
        parent = loader.load(name, version=version)
        self.partitions: set[str] | None = None
        if parent.format == "partitioned":
            manifest = parent.model
            self.partition_by: str | None = manifest["partition_by"]
            self.partitions = set(manifest["partitions"])
            features = manifest.get("features") or [
                f.model_dump() for f in parent.info.features or []
            ]
            if not features:
                raise ValidationFailed(f"{name} version {version} has no feature schema.")
            self.features: list[dict[str, str]] = features
            self.task: str | None = manifest.get("task") or parent.info.task
            self._single: Scorable | None = None
        else:
            self.partition_by = None
            servable, _ = predictor.servable(name, version)
            self._single = self._scorable(servable)
            self.features = servable.features
            self.task = servable.task

    def _scorable(self, servable: Servable) -> Scorable:
        from shared.prediction.batch import Scorable

        loaded: LoadedModel = servable.loaded
        if loaded.format != "onnx":
            return Scorable(servable.features, servable.task, servable.classes, servable=servable)
        return Scorable.from_onnx(
            self.loader.read_verified(loaded.info, loaded.stored),
            servable.features,
            servable.task,
            servable.classes,
            session=loaded.model,
            threads=get_settings().onnx_intra_op_threads,
            label=f"{self.name}:{self.version}",
        )

    def scorable(self, partition: str | None) -> Scorable | None:
        if self.partitions is None:
            return self._single
        if partition not in self.partitions:
            return None
        with self._lock:
            if partition in self._subs:
                return self._subs[partition]
        servable, _ = self.predictor.servable(self.name, self.version, partition=partition)
        sub = self._scorable(servable)
        with self._lock:
            self._subs[partition] = sub
        return sub

    def classes(self) -> list[Any] | None:
        """Every class any (sub-)model predicts, for ``proba_<class>`` columns."""
        if self.partitions is None:
            return self._single.classes if self._single else None
        seen: list[Any] = []
        for partition in sorted(self.partitions):
            sub = self.scorable(partition)
            for c in (sub.classes if sub else None) or []:
                if c not in seen:
                    seen.append(c)
        return seen or None


# --- the service ---------------------------------------------------------------------------


def _is_name(value: str) -> bool:
    try:
        check_name(value, "dataset")
    except ValidationFailed:
        return False
    return True


def _deterministic(exc: BaseException) -> bool:
    """Errors a retry cannot fix: bad data, a changed input, a model that cannot score."""
    import pyarrow as pa

    if isinstance(exc, AppError):
        return exc.status < 500
    return isinstance(
        exc,
        ValueError
        | KeyError
        | TypeError
        | pa.ArrowException
        | ResourceModifiedError
        | ResourceNotFoundError,
    )


class BatchScorer(ScoringRecovery):
    kind = "scoring"

    def __init__(
        self,
        jobs: ScoringJobStore,
        registry: ModelRegistry,
        loader: ModelLoader,
        predictor: Predictor,
        inputs: DatasetStore,
        outputs: ContainerClient,
        queue: QueueClient,
        idempotency: IdempotencyStore,
        max_dequeue_count: int = 5,
    ) -> None:
        self.jobs = jobs
        self.registry = registry
        self.loader = loader
        self.predictor = predictor
        self.inputs = inputs
        self.outputs = outputs
        self.queue = queue
        self.idempotency = idempotency
        self.max_dequeue_count = max_dequeue_count
        self._models: OrderedDict[tuple[str, int], RegistryModel] = OrderedDict()
        self._models_lock = threading.Lock()
        self._building: dict[tuple[str, int], threading.Lock] = {}

    # --- start -------------------------------------------------------------------------------
    def start(
        self, body: BatchScoreRequest, by: str, idempotency_key: str | None = None
    ) -> tuple[ScoringJob, bool]:
        """Queue a job for the request's targets; (job, replayed). 404 before queueing."""
        targets = self._targets(body)
        scope = f"predict-batch:{by}"
        fingerprint = body.model_dump_json()
        if idempotency_key:
            earlier = self.idempotency.begin(scope, idempotency_key, fingerprint)
            if earlier is not None:
                return self.jobs.get(earlier["job_id"]), True
        try:
            job_id = self.jobs.create(body.model_dump(mode="json"), targets, by)
            self.send({"kind": "plan", "job_id": job_id})
        except Exception:
            if idempotency_key:
                self.idempotency.abandon(scope, idempotency_key)
            raise
        if idempotency_key:
            self.idempotency.complete(scope, idempotency_key, {"job_id": job_id})
        return self.jobs.get(job_id), False

    def _targets(self, body: BatchScoreRequest) -> list[dict[str, Any]]:
        if body.alias is not None:
            check_alias(body.alias)
        if body.model is not None or body.dataset is not None:
            name = check_name(body.model or body.dataset or "", "model")
            dataset = check_name(body.dataset or name, "dataset")
            version = self.registry.resolve(name, version=body.version, alias=body.alias)
            self._locate(dataset)
            return [{"model": name, "version": version, "dataset": dataset}]
        # Every model that has a scoring dataset of its own name ("all unscored rooms").
        targets = []
        for name in self._scoring_datasets():
            try:
                version = self.registry.resolve(name, alias=body.alias)
            except NotFound:
                continue  # a scoring dataset without a model (or without that alias)
            targets.append({"model": name, "version": version, "dataset": name})
            if len(targets) > MAX_TARGETS:
                raise ValidationFailed(
                    f"More than {MAX_TARGETS} models have scoring datasets; name the model."
                )
        if not targets:
            raise NotFound(
                "No scoring dataset is named after a registered model"
                + (f" with alias '{body.alias}'." if body.alias else "."),
                code="NOTHING_TO_SCORE",
            )
        return targets

    def _locate(self, dataset: str) -> Any:
        try:
            return self.inputs.locate(dataset)
        except NotFound:
            raise NotFound(
                f"No scoring dataset '{dataset}' (container '{INPUT_CONTAINER}', folder"
                f" '{dataset}/').",
                code="SCORING_DATASET_NOT_FOUND",
            ) from None

    def _scoring_datasets(self) -> Iterator[str]:
        from azure.storage.blob import BlobPrefix

        for entry in self.inputs.container.walk_blobs(delimiter="/"):
            if isinstance(entry, BlobPrefix) and _is_name(entry.name[:-1]):
                yield entry.name[:-1]

    def _model(self, name: str, version: int) -> RegistryModel:
        key = (name, version)
        with self._models_lock:
            hit = self._models.get(key)
            if hit is not None:
                self._models.move_to_end(key)
                return hit
            gate = self._building.setdefault(key, threading.Lock())
        # One build per model: the chunks of a job arrive together, on several threads.
        with gate:
            with self._models_lock:
                hit = self._models.get(key)
            if hit is not None:
                return hit
            model = RegistryModel(self.predictor, self.loader, name, version)
            with self._models_lock:
                self._models[key] = model
                self._building.pop(key, None)
                while len(self._models) > CACHED_MODELS:
                    self._models.popitem(last=False)
            return model

    # --- dispatch of queue messages ------------------------------------------------------------
    def handle(
        self, message: dict[str, Any], dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        kind, job_id = message.get("kind"), str(message.get("job_id", ""))
        if kind == "plan":
            self.plan(job_id)
        elif kind == "chunk":
            self.run_chunk(job_id, str(message["chunk_id"]), dequeue_count, message_id)
        elif kind == "finalize":
            self.finalize(job_id, int(message["target"]), dequeue_count)
        else:
            log.warning("ignored a scoring message of unknown kind", extra={"kind": kind})

    def give_up(self, message: dict[str, Any], reason: str) -> None:
        """A message exhausted its retries (poison): record the failure so the job ends."""
        kind, job_id = message.get("kind"), str(message.get("job_id", ""))
        if kind == "chunk":
            chunk = self.jobs.chunk(job_id, str(message["chunk_id"]))
            if chunk.status not in CHUNK_TERMINAL:
                self.jobs.set_chunk(chunk, etag_guard=False, status="failed", error=reason, part="")
            self._count_chunk(chunk)
        elif kind == "finalize":
            target = self.jobs.target(job_id, int(message["target"]))
            if target.status not in TERMINAL:
                self.jobs.set_target(target, status="failed", error=f"finalize: {reason}")
            self._delete_parts(target)
            self._count_target(target)
        else:
            for target in self.jobs.list_targets(job_id):
                if target.status not in TERMINAL:
                    self.jobs.set_target(target, status="failed", error=f"planning: {reason}")
            self.jobs.update(
                job_id, status="failed", error=f"planning: {reason}", finished_at=iso(utcnow())
            )

    # --- plan ----------------------------------------------------------------------------------
    def plan(self, job_id: str) -> None:
        raw = self.jobs.raw(job_id)
        if raw["status"] != "queued" and raw.get("dispatched"):
            return  # planned and dispatched already (a redelivered message)
        request = self.jobs.request(job_id)
        messages: list[dict[str, Any]] = []
        ended: list[Target] = []
        for target in self.jobs.list_targets(job_id):
            if target.status != "queued":
                # Planned by an earlier delivery that died before dispatching: send again
                # (a chunk or finalize that already ran ignores the duplicate).
                if target.status == "running":
                    messages += self._messages(job_id, target, target.total_chunks)
                elif target.status == "failed" and target.total_chunks <= 0:
                    ended.append(target)
                continue
            try:
                plan, mine = self._plan_target(target, request)
            except Exception as exc:
                if not _deterministic(exc):
                    raise  # storage trouble: the host retries the plan message
                message = exc.detail if isinstance(exc, AppError) else str(exc)
                self.jobs.set_target(
                    target,
                    status="failed",
                    error=f"planning failed: {message}"[:1000],
                    total_chunks=0,
                    finished_at=iso(utcnow()),
                )
                ended.append(target)
                continue
            self.jobs.add_chunks(job_id, mine)
            self.jobs.set_target(target, plan=plan, total_chunks=len(mine), status="running")
            messages += self._messages(job_id, target, len(mine))
        if raw["status"] == "queued":
            self.jobs.update(job_id, status="running", started_at=iso(utcnow()))
        self.dispatch(messages, lambda: self.jobs.update(job_id, dispatched=True))
        for target in ended:  # counted last: the job may end here
            self._count_target(target)

    @staticmethod
    def _messages(job_id: str, target: Target, chunks: int) -> list[dict[str, Any]]:
        if chunks <= 0:  # an empty dataset: straight to an empty output
            return [{"kind": "finalize", "job_id": job_id, "target": target.index}]
        return [
            {"kind": "chunk", "job_id": job_id, "chunk_id": f"{target.index:03d}-{seq:06d}"}
            for seq in range(chunks)
        ]

    def _plan_target(
        self, target: Target, request: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        model = self._model(target.model, target.version)
        location = self._locate(target.dataset)
        features = [f["name"] for f in model.features]
        files: list[tuple[DatasetBlob, list[str], list[dict[str, Any]]]] = []
        dtypes: dict[str, str] = {}
        for blob in location.files:
            if blob.format == "parquet":
                names, pieces = self._plan_parquet(blob)
            else:
                if not dtypes:  # CSV has no types: the dataset store's profile gives them
                    view = self.inputs.get(target.dataset)
                    if view.error:
                        raise ValidationFailed(f"Scoring dataset unreadable: {view.error}")
                    dtypes = {c.name: c.dtype for c in view.columns}
                names, pieces = self._plan_csv(blob)
            files.append((blob, names, pieces))
        first = files[0][1]
        explicit = request.get("key_columns")
        if explicit:
            clash = [k for k in explicit if k in ("prediction", "score", "probability")]
            clash += [k for k in explicit if k == "model_version" or k.startswith("proba_")]
            if clash:
                raise ValidationFailed(f"Key column(s) clash with output columns: {clash}.")
            keys = list(dict.fromkeys(explicit))
        else:
            keys = [
                c
                for c in first
                if c not in set(features)
                and c not in ("prediction", "score", "probability", "model_version")
                and not c.startswith("__index_level_")
            ]
        needed = [*features, *keys, *([model.partition_by] if model.partition_by else [])]
        for blob, names, _ in files:
            absent = [c for c in dict.fromkeys(needed) if c not in names]
            if absent:
                raise ValidationFailed(
                    f"'{blob.path}' has no column(s) {', '.join(absent[:20])} (features of"
                    f" {target.model} v{target.version}, key or partition columns)."
                )
        mode = request.get("probabilities") or "predicted"
        classes = model.classes() if mode == "per_class" and model.task != "regression" else None
        plan = {
            "keys": keys,
            "dtypes": {c: d for c, d in dtypes.items() if c in set(needed)},
            "probabilities": mode,
            "classes": classes,
            "output_format": request.get("output_format") or "parquet",
        }
        chunks = []
        for blob, _, pieces in files:
            for piece in pieces:
                chunks.append(
                    {
                        "target": target.index,
                        "seq": len(chunks),
                        "path": blob.path,
                        "format": blob.format,
                        "etag": blob.etag,
                        "size": blob.size,
                        **piece,
                    }
                )
        return plan, chunks

    def _plan_parquet(self, blob: DatasetBlob) -> tuple[list[str], list[dict[str, Any]]]:
        """Columns and row-group ranges of ~CHUNK_ROWS rows (a big row group is one chunk)."""
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(_reader(self.inputs.container, blob))
        names = parquet.schema_arrow.names
        pieces: list[dict[str, Any]] = []
        start, rows = 0, 0
        meta = parquet.metadata
        for index in range(meta.num_row_groups):
            rows += meta.row_group(index).num_rows
            if rows >= CHUNK_ROWS:
                pieces.append({"start": start, "end": index + 1, "rows": rows})
                start, rows = index + 1, 0
        if start < meta.num_row_groups and rows:
            pieces.append({"start": start, "end": meta.num_row_groups, "rows": rows})
        return names, pieces

    def _plan_csv(self, blob: DatasetBlob) -> tuple[list[str], list[dict[str, Any]]]:
        """Columns (header) and byte ranges of ~CHUNK_ROWS records, in one streaming pass."""
        from shared.prediction.batch import csv_chunks

        stream = _reader(self.inputs.container, blob)
        header_end, ranges = csv_chunks(stream.read, CHUNK_ROWS)
        head = self.inputs.container.download_blob(
            blob.path, offset=0, length=max(1, header_end), max_concurrency=1
        ).readall()
        names = next(csv.reader(io.StringIO(head.decode("utf-8-sig"))), [])
        pieces = [
            {"start": start, "end": end, "rows": rows, "header_end": header_end}
            for start, end, rows in ranges
        ]
        return names, pieces

    # --- one chunk -----------------------------------------------------------------------------
    def run_chunk(
        self, job_id: str, chunk_id: str, dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        chunk = self.jobs.chunk(job_id, chunk_id)
        if chunk.status in CHUNK_TERMINAL:
            self._count_chunk(chunk)  # the previous delivery may have died before counting
            return
        if not claim(
            chunk.status,
            chunk.owner,
            message_id,
            lambda: self.jobs.set_chunk(
                chunk, status="running", owner=message_id or "", started_at=iso(utcnow())
            ),
        ):
            return  # another delivery owns it
        target = self.jobs.target(job_id, chunk.target)
        part = f"{target.model}/{job_id}/part-{chunk.seq:05d}.parquet"
        try:
            stats = self._score_chunk(target, chunk, part)
            self.jobs.set_chunk(
                chunk,
                status="succeeded",
                rows_scored=stats.rows_scored,
                rows_failed=stats.rows_failed,
                reasons=dict(stats.reasons),
                part=part if stats.rows_scored else "",
                finished_at=iso(utcnow()),
            )
        except Exception as exc:
            if not _deterministic(exc) and dequeue_count < self.max_dequeue_count:
                raise  # transient (storage, memory): the host retries the message
            log.warning("scoring chunk failed", extra={"job_id": job_id, "chunk": chunk_id})
            detail = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            self.jobs.set_chunk(
                chunk, status="failed", error=detail[:1000], part="", finished_at=iso(utcnow())
            )
        self._count_chunk(self.jobs.chunk(job_id, chunk_id))

    def _score_chunk(self, target: Target, chunk: Chunk, part: str) -> Any:
        from shared.prediction.batch import OutputWriter, RangeReader, score_csv, score_parquet

        model = self._model(target.model, target.version)
        plan = target.plan
        blob = DatasetBlob(
            path=chunk.path,
            format=chunk.format,  # type: ignore[arg-type]
            size=chunk.size,
            etag=chunk.etag_of_input,
            last_modified=utcnow(),
        )
        sink = BlockBlobWriter(self.outputs, part, CONTENT_TYPES["parquet"])
        writer = OutputWriter(sink)
        options = {
            "key_columns": plan["keys"],
            "probabilities": plan.get("probabilities") or "predicted",
            "classes": plan.get("classes"),
        }
        try:
            if chunk.format == "parquet":
                stats = score_parquet(
                    _reader(self.inputs.container, blob),
                    model,
                    writer,
                    row_groups=range(chunk.start, chunk.end),
                    **options,
                )
            else:
                source = BlobRangeReader(self.inputs.container, blob)

                def read_range(offset: int, length: int) -> bytes:
                    source.seek(offset)
                    return source.read(length) or b""

                header = read_range(0, chunk.header_end)
                stream = io.BufferedReader(
                    RangeReader(header, read_range, chunk.start, chunk.end), READ_BLOCK
                )
                stats = score_csv(stream, plan["dtypes"], model, writer, **options)
        except ResourceModifiedError:
            raise Conflict(
                f"'{chunk.path}' was replaced while it was being scored; score again.",
                code="DATASET_CHANGED",
            ) from None
        except ResourceNotFoundError:
            raise Conflict(
                f"'{chunk.path}' was removed while it was being scored; score again.",
                code="DATASET_CHANGED",
            ) from None
        if writer.rows:
            writer.close()
            sink.commit()
        return stats

    def _count_chunk(self, chunk: Chunk) -> None:
        job_id, index = chunk.job_id, chunk.target
        self.fan_in(
            chunk.counted,
            lambda: self.jobs.add_done_chunk(job_id, index),
            lambda: self.jobs.set_chunk(chunk, etag_guard=False, counted=True),
            lambda: self.jobs.chunk_counts(job_id, index),
            lambda: self._send({"kind": "finalize", "job_id": job_id, "target": index}),
        )

    # --- fan-in ----------------------------------------------------------------------------------
    def finalize(self, job_id: str, index: int, dequeue_count: int = 1) -> None:
        target = self.jobs.target(job_id, index)
        if target.status in TERMINAL:
            self._count_target(target)
            return
        chunks = self.jobs.list_chunks(job_id, index)
        if any(c.status not in CHUNK_TERMINAL for c in chunks):
            return  # a chunk was double counted; the last real one will finalize
        ok = [c for c in chunks if c.status == "succeeded"]
        failed = [c for c in chunks if c.status == "failed"]
        reasons: dict[str, int] = {}
        for c in chunks:
            for reason, count in c.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
        scored = sum(c.rows_scored for c in ok)
        # A failed chunk's rows are all failed: its planned row count stands for them.
        rows_failed = sum(c.rows_failed for c in ok) + sum(c.rows for c in failed)
        error = None
        if failed:
            why = "; ".join(dict.fromkeys(c.error or "failed" for c in failed))
            error = f"{len(failed)} of {len(chunks)} chunks failed: {why}"[:1000]
        status = "succeeded" if not failed else "partially_failed" if ok else "failed"
        outputs: list[str] = []
        if status != "failed":
            try:
                outputs = self._write_outputs(target, [c.part for c in ok if c.part])
            except Exception as exc:
                current = self.jobs.target(job_id, index)
                if current.status in TERMINAL:
                    # A duplicate finalize finished first and removed the parts: its result stands.
                    self._count_target(current)
                    return
                if not _deterministic(exc) and dequeue_count < self.max_dequeue_count:
                    raise  # transient: the host retries the finalize message
                status, error = "failed", f"writing the output failed: {exc}"[:1000]
                rows_failed, scored = rows_failed + scored, 0
        self.jobs.set_target(
            target,
            status=status,
            rows_scored=scored,
            rows_failed=rows_failed,
            reasons=reasons,
            outputs=outputs,
            error=error,
            finished_at=iso(utcnow()),
        )
        self._delete_parts(target)
        self._count_target(target)

    def _write_outputs(self, target: Target, parts: list[str]) -> list[str]:
        import pyarrow as pa

        from shared.prediction.batch import OutputWriter, concat_parquet

        fmt = target.plan.get("output_format") or "parquet"
        base = f"{target.model}/{target.job_id}"
        sinks = {
            kind: BlockBlobWriter(self.outputs, f"{base}.{kind}", CONTENT_TYPES[kind])
            for kind in ("parquet", "csv")
            if fmt in (kind, "both")
        }
        writer: OutputWriter = OutputWriter(sinks.get("parquet"), sinks.get("csv"))
        sources = [_reader(self.outputs, _blob_of(self.outputs, p)) for p in parts]
        concat_parquet(sources, writer)
        # With no row at all the file still has the key columns (their types unknown here).
        fields = [(k, pa.string()) for k in target.plan.get("keys") or []]
        writer.close(pa.schema([*fields, ("prediction", pa.null()), ("model_version", pa.int64())]))
        for sink in sinks.values():
            sink.commit()
        return [f"{OUTPUT_CONTAINER}/{s.name}" for s in sinks.values()]

    def _delete_parts(self, target: Target) -> None:
        prefix = f"{target.model}/{target.job_id}/"
        for blob in self.outputs.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self.outputs.delete_blob(blob.name)

    def _count_target(self, target: Target) -> None:
        job_id = target.job_id
        self.fan_in(
            target.counted,
            lambda: self.jobs.add_done_target(job_id),
            lambda: self.jobs.set_target(target, counted=True),
            lambda: self.jobs.target_counts(job_id),
            lambda: self._finish(job_id),
        )

    def _finish(self, job_id: str) -> None:
        raw = self.jobs.raw(job_id)
        if raw["status"] in TERMINAL:
            return
        statuses = [t.status for t in self.jobs.list_targets(job_id)]
        if any(s not in TERMINAL for s in statuses):
            return
        if all(s == "succeeded" for s in statuses):
            status = "succeeded"
        elif all(s == "failed" for s in statuses):
            status = "failed"
        else:
            status = "partially_failed"
        self.jobs.update(job_id, status=status, finished_at=iso(utcnow()))


@services.singleton
def batch_scorer() -> BatchScorer:
    """The process-wide batch scorer (built on first use, dropped by ``services.reset``)."""
    storage = services.storage()
    return BatchScorer(
        jobs=ScoringJobStore(
            storage.table(JOBS_TABLE), storage.table(TARGETS_TABLE), storage.table(CHUNKS_TABLE)
        ),
        registry=services.model_registry(),
        loader=services.model_loader(),
        predictor=services.predictor(),
        inputs=DatasetStore(
            storage.container(INPUT_CONTAINER), storage.table(SCORING_DATASETS_TABLE)
        ),
        outputs=storage.container(OUTPUT_CONTAINER),
        queue=storage.queue(QUEUE),
        idempotency=services.idempotency_store(),
        max_dequeue_count=get_settings().queue_max_dequeue_count,
    )
