"""Scoring one chunk of a batch job: its rows through the engine into a part blob.

:class:`ChunkScoring` is the chunk half of :class:`~shared.prediction.batch.service.BatchScorer`
(a mixin over its job store, registry, loader, inputs and outputs); the service plans,
dispatches, cancels and fans in.
"""

from __future__ import annotations

import contextlib
import io
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.datasets.blobs import READ_BLOCK, BlobRangeReader
from shared.datasets.schemas import DatasetBlob
from shared.datasets.store import DatasetStore
from shared.errors import AppError, Conflict
from shared.jobs.queue_job import claim
from shared.observability import get_logger
from shared.prediction.batch.blobs import (
    CONTENT_TYPES,
    BlockBlobWriter,
    _reader,
)
from shared.prediction.batch.errors import deterministic
from shared.prediction.batch.jobs import (
    CHUNK_TERMINAL,
    Chunk,
    ScoringJobStore,
    Target,
)
from shared.tables import iso, utcnow

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

log = get_logger("batch")


class ChunkScoring:
    """Running one chunk message, for :class:`BatchScorer`."""

    jobs: ScoringJobStore
    inputs: DatasetStore
    outputs: ContainerClient
    max_dequeue_count: int

    # --- one chunk -----------------------------------------------------------------------------
    def run_chunk(
        self, job_id: str, chunk_id: str, dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        chunk = self.jobs.chunk(job_id, chunk_id)
        if chunk.status in CHUNK_TERMINAL:
            if chunk.status != "cancelled":
                self._count_chunk(chunk)  # the previous delivery may have died first
            return
        if self._cancelled(job_id):
            self.jobs.set_chunk(chunk, etag_guard=False, status="cancelled", part="")
            return  # not started: skipped
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
            if self._cancelled(job_id):  # cancelled while it ran: drop its part
                with contextlib.suppress(ResourceNotFoundError):
                    self.outputs.delete_blob(part)
                self.jobs.set_chunk(chunk, etag_guard=False, status="cancelled", part="")
                return
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
            if not deterministic(exc) and dequeue_count < self.max_dequeue_count:
                raise  # transient (storage, memory): the host retries the message
            log.warning("scoring chunk failed", extra={"job_id": job_id, "chunk": chunk_id})
            detail = exc.detail if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            self.jobs.set_chunk(
                chunk, status="failed", error=detail[:1000], part="", finished_at=iso(utcnow())
            )
        self._count_chunk(self.jobs.chunk(job_id, chunk_id))

    def _score_chunk(self, target: Target, chunk: Chunk, part: str) -> Any:
        from shared.prediction.batch.engine import score_csv, score_parquet
        from shared.prediction.batch.files import OutputWriter, RangeReader

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
