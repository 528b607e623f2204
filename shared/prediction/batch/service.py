"""Batch scoring of the scoring datasets in Blob: start, plan, fan out per chunk, fan in.

``start`` (``POST /predict``) resolves every target (model version x scoring dataset),
404s before anything is queued, records the job and queues a *plan* message. The
planner reads only file footers (Parquet) or scans for record boundaries (CSV) and
queues one *chunk* message per ~:data:`CHUNK_ROWS` rows (whole Parquet row groups, or a
CSV byte range). A chunk worker streams its rows through ``batch.engine`` into a part
blob ``scored/{model}/{job_id}/part-NNNNN.parquet``;
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

import contextlib
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.datasets.schemas import DatasetBlob
from shared.datasets.store import DatasetStore
from shared.errors import AppError, Conflict, ValidationFailed
from shared.observability import get_logger
from shared.prediction.batch.blobs import (
    CONTENT_TYPES,
    BlockBlobWriter,
    _blob_of,
    _reader,
)
from shared.prediction.batch.chunks import ChunkScoring
from shared.prediction.batch.errors import deterministic
from shared.prediction.batch.inputs import locate, plan_csv, plan_parquet, scoring_targets
from shared.prediction.batch.jobs import (
    CHUNK_TERMINAL,
    TERMINAL,
    Chunk,
    ScoringJob,
    ScoringJobStore,
    Target,
)
from shared.prediction.batch.recovery import ScoringRecovery
from shared.prediction.batch.schemas import (
    BatchScoreRequest,
)
from shared.prediction.batch.versions import (
    RegistryVersion,
)
from shared.resources import Containers
from shared.tables import iso, utcnow

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient

    from shared.idempotency import IdempotencyStore
    from shared.prediction.batch.files import OutputWriter
    from shared.prediction.engine import Predictor
    from shared.registry.loader import ModelLoader
    from shared.registry.store import ModelRegistry


OUTPUT_CONTAINER = Containers.SCORED
# Mirrors shared.prediction.batch.files.CHUNK_ROWS (that module loads numpy; this one must not).
CHUNK_ROWS = 250_000

log = get_logger("batch")

# --- the service ---------------------------------------------------------------------------


class BatchScorer(ScoringRecovery, ChunkScoring):
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

    # --- start -------------------------------------------------------------------------------
    def start(
        self, body: BatchScoreRequest, by: str, idempotency_key: str | None = None
    ) -> tuple[ScoringJob, bool]:
        """Queue a job for the request's targets; (job, replayed). 404 before queueing."""
        targets = scoring_targets(self.registry, self.inputs, body)
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

    def _model(self, name: str, version: int) -> RegistryVersion:
        # One build per version, however many chunks arrive at once (the loader's cache).
        parent = self.loader.load(name, version=version)
        return self.loader.derived(
            parent, "batch", lambda: RegistryVersion(self.predictor, self.loader, parent)
        )

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
        if raw["status"] in TERMINAL or (raw["status"] != "queued" and raw.get("dispatched")):
            return  # cancelled, or planned and dispatched already (a redelivered message)
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
                if not deterministic(exc):
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
        if raw["status"] == "queued" and not self.jobs.transition(
            job_id, ("queued",), status="running", started_at=iso(utcnow())
        ):
            return  # cancelled while planning: its chunks are never sent
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
        location = locate(self.inputs, target.dataset)
        features = [f["name"] for f in model.features]
        files: list[tuple[DatasetBlob, list[str], list[dict[str, Any]]]] = []
        dtypes: dict[str, str] = {}
        for blob in location.files:
            if blob.format == "parquet":
                names, pieces = plan_parquet(self.inputs.container, blob, CHUNK_ROWS)
            else:
                if not dtypes:  # CSV has no types: the dataset store's profile gives them
                    view = self.inputs.get(target.dataset)
                    if view.error:
                        raise ValidationFailed(f"Scoring dataset unreadable: {view.error}")
                    dtypes = {c.name: c.dtype for c in view.columns}
                names, pieces = plan_csv(self.inputs.container, blob, CHUNK_ROWS)
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

    def _cancelled(self, job_id: str) -> bool:
        return self.jobs.raw(job_id)["status"] == "cancelled"

    def cancel(self, job_id: str, by: str) -> ScoringJob:
        """Cancel a queued or running job: chunks not started are skipped, running ones
        drop their output when they finish, no output is written. Twice is a no-op."""
        if not self.jobs.transition(
            job_id,
            ("queued", "running"),
            status="cancelled",
            cancelled_by=by,
            finished_at=iso(utcnow()),
            error=f"cancelled by {by}",
        ):
            job = self.jobs.get(job_id)
            if job.status == "cancelled":
                return job
            raise Conflict(
                f"The job is {job.status}: only a queued or running job can be cancelled.",
                code="JOB_NOT_CANCELLABLE",
            )
        log.info("scoring job cancelled", extra={"job_id": job_id, "by": by})
        for target in self.jobs.list_targets(job_id):
            self._delete_parts(target)
        return self.jobs.get(job_id)

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
        if self._cancelled(job_id):
            return  # no output for a cancelled job
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
                if not deterministic(exc) and dequeue_count < self.max_dequeue_count:
                    raise  # transient: the host retries the finalize message
                status, error = "failed", f"writing the output failed: {exc}"[:1000]
                rows_failed, scored = rows_failed + scored, 0
            if self._cancelled(job_id):  # cancelled while the output was written
                for path in outputs:
                    with contextlib.suppress(ResourceNotFoundError):
                        self.outputs.delete_blob(path.split("/", 1)[1])
                self._delete_parts(target)
                return
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

        from shared.prediction.batch.files import OutputWriter, concat_parquet

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
