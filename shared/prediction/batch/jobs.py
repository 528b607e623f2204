"""Batch scoring jobs in Table Storage: the job, its targets (model x dataset), its chunks.

``ScoringJobs`` holds one row per job (PartitionKey ``scoring``, RowKey an inverted-time
id so the newest list first) with the fan-in counter of finished targets;
``ScoringTargets`` one row per (model, dataset) of a job with the fan-in counter of its
finished chunks; ``ScoringChunks`` one row per chunk (PartitionKey = job id). Counters
move under ETag guards, as training's do (``shared.training.jobs``), because many chunk
workers finish at once. No ML imports here: the HTTP edge reads jobs cold.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from pydantic import BaseModel, Field

from shared.errors import NotFound
from shared.jobs.queue_job import row_timestamp
from shared.tables import increment, iso, merge, parse_iso, transition, utcnow
from shared.training.jobs import new_job_id

PARTITION = "scoring"
TERMINAL = frozenset({"succeeded", "failed", "partially_failed", "cancelled"})
CHUNK_TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# A Table string property holds 32k UTF-16 characters; long plans are split over several.
TEXT_PART = 30_000
TEXT_PARTS = 20

JobStatus = Literal["queued", "running", "succeeded", "failed", "partially_failed", "cancelled"]


class ChunkCounts(BaseModel):
    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class TargetResult(BaseModel):
    """One model scored on one scoring dataset within a job."""

    model: str
    version: int
    dataset: str
    status: str
    rows_scored: int = 0
    rows_failed: int = 0
    outputs: list[str] = []
    chunks: ChunkCounts = ChunkCounts()
    failure_reasons: dict[str, int] = Field(
        default_factory=dict, description="Why rows failed, with counts (at most 20 reasons)."
    )
    error: str | None = None


class ScoringJob(BaseModel):
    """A batch scoring job; ``model``/``version``/``dataset`` are set when it has one target."""

    job_id: str
    status: JobStatus
    model: str | None
    version: int | None
    dataset: str | None
    rows_scored: int
    rows_failed: int
    outputs: list[str] = Field(description="Blob paths (container/blob) of the results.")
    chunks: ChunkCounts
    failure_reasons: dict[str, int] = {}
    created_at: datetime
    created_by: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    cancelled_by: str | None = None
    targets: list[TargetResult] = []


class Target(BaseModel):
    job_id: str
    index: int
    model: str
    version: int
    dataset: str
    status: str
    total_chunks: int = -1
    done_chunks: int = 0
    rows_scored: int = 0
    rows_failed: int = 0
    outputs: list[str] = []
    reasons: dict[str, int] = {}
    plan: dict[str, Any] = {}
    error: str | None = None
    counted: bool = False
    updated_at: datetime | None = None
    etag: str | None = None


class Chunk(BaseModel):
    job_id: str
    chunk_id: str
    target: int
    seq: int
    path: str
    format: str
    etag_of_input: str
    size: int
    start: int
    end: int
    header_end: int = 0
    rows: int = 0
    status: str = "queued"
    rows_scored: int = 0
    rows_failed: int = 0
    reasons: dict[str, int] = {}
    part: str = ""
    error: str | None = None
    counted: bool = False
    owner: str | None = None  # id of the queue message whose delivery scores the chunk
    updated_at: datetime | None = None
    etag: str | None = None


def target_key(index: int) -> str:
    return f"{index:03d}"


def chunk_key(target: int, seq: int) -> str:
    return f"{target:03d}-{seq:06d}"


def _split_text(prefix: str, text: str) -> dict[str, Any]:
    parts = [text[i : i + TEXT_PART] for i in range(0, len(text), TEXT_PART)] or [""]
    if len(parts) > TEXT_PARTS:
        raise ValueError(f"{prefix} is too large to store ({len(text)} characters)")
    return {f"{prefix}_parts": len(parts), **{f"{prefix}_{i}": p for i, p in enumerate(parts)}}


def _join_text(e: dict[str, Any], prefix: str) -> str:
    return "".join(e.get(f"{prefix}_{i}", "") for i in range(int(e.get(f"{prefix}_parts") or 0)))


def _etag(e: Any) -> str | None:
    return e.metadata.get("etag") if hasattr(e, "metadata") else None


def _target(e: dict[str, Any]) -> Target:
    plan = _join_text(e, "plan")
    return Target(
        job_id=e["PartitionKey"],
        index=int(e["RowKey"]),
        model=e["model"],
        version=int(e["version"]),
        dataset=e["dataset"],
        status=e["status"],
        total_chunks=int(e.get("total_chunks", -1)),
        done_chunks=int(e.get("done_chunks") or 0),
        rows_scored=int(e.get("rows_scored") or 0),
        rows_failed=int(e.get("rows_failed") or 0),
        outputs=json.loads(e.get("outputs") or "[]"),
        reasons=json.loads(e.get("reasons") or "{}"),
        plan=json.loads(plan) if plan else {},
        error=e.get("error") or None,
        counted=bool(e.get("counted")),
        updated_at=row_timestamp(e),
        etag=_etag(e),
    )


def _chunk(e: dict[str, Any]) -> Chunk:
    return Chunk(
        job_id=e["PartitionKey"],
        chunk_id=e["RowKey"],
        target=int(e["target"]),
        seq=int(e["seq"]),
        path=e["path"],
        format=e["format"],
        etag_of_input=e["input_etag"],
        size=int(e["size"]),
        start=int(e["start"]),
        end=int(e["end"]),
        header_end=int(e.get("header_end") or 0),
        rows=int(e.get("rows") or 0),
        status=e["status"],
        rows_scored=int(e.get("rows_scored") or 0),
        rows_failed=int(e.get("rows_failed") or 0),
        reasons=json.loads(e.get("reasons") or "{}"),
        part=e.get("part") or "",
        error=e.get("error") or None,
        counted=bool(e.get("counted")),
        owner=e.get("owner") or None,
        updated_at=row_timestamp(e),
        etag=_etag(e),
    )


def _counts(chunks: list[Chunk]) -> ChunkCounts:
    counts = ChunkCounts(total=len(chunks))
    for c in chunks:
        if c.status in ("queued", "running", "succeeded", "failed", "cancelled"):
            setattr(counts, c.status, getattr(counts, c.status) + 1)
    return counts


def _merge(into: dict[str, int], more: dict[str, int]) -> None:
    for reason, count in more.items():
        into[reason] = into.get(reason, 0) + count


def _assemble(e: dict[str, Any], targets: list[Target], chunks: list[Chunk]) -> ScoringJob:
    """A job as the API shows it, from its row, its targets and its chunks."""
    job_id = e["RowKey"]
    results = []
    reasons: dict[str, int] = {}
    for t in targets:
        mine = [c for c in chunks if c.target == t.index]
        done = t.status in TERMINAL
        # While a target runs its rows are the sum of its finished chunks.
        scored = t.rows_scored if done else sum(c.rows_scored for c in mine)
        failed = t.rows_failed if done else sum(c.rows_failed for c in mine)
        why = dict(t.reasons) if done else {}
        if not done:
            for c in mine:
                _merge(why, c.reasons)
        _merge(reasons, why)
        results.append(
            TargetResult(
                model=t.model,
                version=t.version,
                dataset=t.dataset,
                status=t.status,
                rows_scored=scored,
                rows_failed=failed,
                outputs=t.outputs,
                chunks=_counts(mine),
                failure_reasons=why,
                error=t.error,
            )
        )
    single = results[0] if len(results) == 1 else None
    return ScoringJob(
        job_id=job_id,
        status=e["status"],
        model=single.model if single else None,
        version=single.version if single else None,
        dataset=single.dataset if single else None,
        rows_scored=sum(r.rows_scored for r in results),
        rows_failed=sum(r.rows_failed for r in results),
        outputs=[o for r in results for o in r.outputs],
        chunks=_counts(chunks),
        failure_reasons=reasons,
        created_at=parse_iso(e["created_at"]),
        created_by=e["created_by"],
        started_at=parse_iso(e["started_at"]) if e.get("started_at") else None,
        finished_at=parse_iso(e["finished_at"]) if e.get("finished_at") else None,
        error=e.get("error") or None,
        cancelled_by=e.get("cancelled_by") or None,
        targets=results,
    )


class ScoringJobStore:
    def __init__(self, jobs: TableClient, targets: TableClient, chunks: TableClient) -> None:
        self.jobs = jobs
        self.targets = targets
        self.chunks = chunks

    # --- jobs ------------------------------------------------------------------------------
    def create(self, request: dict[str, Any], targets: list[dict[str, Any]], by: str) -> str:
        job_id = new_job_id()
        self.jobs.create_entity(
            {
                "PartitionKey": PARTITION,
                "RowKey": job_id,
                "status": "queued",
                "created_at": iso(utcnow()),
                "created_by": by,
                **_split_text("request", json.dumps(request)),
                "targets_total": len(targets),
                "targets_done": 0,
                "error": "",
            }
        )
        rows = [
            {
                "PartitionKey": job_id,
                "RowKey": target_key(i),
                "model": t["model"],
                "version": t["version"],
                "dataset": t["dataset"],
                "status": "queued",
                "total_chunks": -1,
                "done_chunks": 0,
                "counted": False,
            }
            for i, t in enumerate(targets)
        ]
        for start in range(0, len(rows), 100):
            self.targets.submit_transaction([("upsert", r) for r in rows[start : start + 100]])
        return job_id

    def raw(self, job_id: str) -> dict[str, Any]:
        if not job_id.isalnum() or len(job_id) > 40:
            raise NotFound("No such scoring job.", code="SCORING_JOB_NOT_FOUND")
        try:
            return self.jobs.get_entity(PARTITION, job_id)
        except ResourceNotFoundError:
            raise NotFound("No such scoring job.", code="SCORING_JOB_NOT_FOUND") from None

    def recent(self, limit: int, model: str | None = None, scan: int = 500) -> list[ScoringJob]:
        """The newest jobs (ids sort newest first), optionally those that scored ``model``;
        at most ``scan`` jobs are examined. A page of jobs costs one query per table, not
        three calls per job (CI saw 64 jobs take 5 s that way)."""
        found: list[ScoringJob] = []
        pages = self.jobs.query_entities(
            "PartitionKey eq @pk", parameters={"pk": PARTITION}, results_per_page=100
        ).by_page()
        examined = 0
        for page in pages:
            batch = []
            for row in page:
                if examined >= scan:
                    break
                examined += 1
                asked = json.loads(_join_text(row, "request") or "{}").get("model")
                if model is None or asked in (None, model):
                    batch.append(row)
            if model is None:
                batch = batch[: limit - len(found)]
            found.extend(self._assemble_page(batch, model)[: limit - len(found)])
            if len(found) >= limit or examined >= scan:
                break
        return found

    def _assemble_page(self, rows: list[dict[str, Any]], model: str | None) -> list[ScoringJob]:
        """Jobs for consecutive job rows, their targets and chunks read as one key range."""
        if not rows:
            return []
        targets: dict[str, list[Target]] = {}
        for t in map(_target, self._job_range(self.targets, [r["RowKey"] for r in rows])):
            targets.setdefault(t.job_id, []).append(t)
        if model is not None:
            rows = [r for r in rows if any(t.model == model for t in targets.get(r["RowKey"], []))]
            if not rows:
                return []
        chunks: dict[str, list[Chunk]] = {}
        for c in map(_chunk, self._job_range(self.chunks, [r["RowKey"] for r in rows])):
            chunks.setdefault(c.job_id, []).append(c)
        return [
            _assemble(
                r,
                sorted(targets.get(r["RowKey"], []), key=lambda t: t.index),
                sorted(chunks.get(r["RowKey"], []), key=lambda c: c.chunk_id),
            )
            for r in rows
        ]

    @staticmethod
    def _job_range(table: TableClient, job_ids: list[str]) -> Any:
        """Every row of ``table`` partitioned by a job id between the first and last given."""
        return table.query_entities(
            "PartitionKey ge @lo and PartitionKey le @hi",
            parameters={"lo": min(job_ids), "hi": max(job_ids)},
        )

    def request(self, job_id: str) -> dict[str, Any]:
        return json.loads(_join_text(self.raw(job_id), "request") or "{}")

    def get(self, job_id: str) -> ScoringJob:
        return _assemble(self.raw(job_id), self.list_targets(job_id), self.list_chunks(job_id))

    def update(self, job_id: str, **fields: Any) -> None:
        self.jobs.update_entity(
            {"PartitionKey": PARTITION, "RowKey": job_id, **fields}, mode=UpdateMode.MERGE
        )

    def transition(self, job_id: str, allowed: tuple[str, ...], **fields: Any) -> dict | None:
        """Set fields only while the job's status is one of ``allowed`` (see tables)."""
        self.raw(job_id)  # 404 for an unknown id
        return transition(self.jobs, PARTITION, job_id, allowed, fields)

    def active_raw(self) -> list[dict[str, Any]]:
        """Rows of every job still queued or running (the watchdog's view)."""
        query = "PartitionKey eq @pk and (status eq 'queued' or status eq 'running')"
        return list(self.jobs.query_entities(query, parameters={"pk": PARTITION}))

    def target_counts(self, job_id: str) -> tuple[int, int]:
        e = self.raw(job_id)
        return int(e.get("targets_done") or 0), int(e.get("targets_total", -1))

    def chunk_counts(self, job_id: str, index: int) -> tuple[int, int]:
        t = self.target(job_id, index)
        return t.done_chunks, t.total_chunks

    def add_done_target(self, job_id: str) -> tuple[int, int]:
        return increment(self.jobs, PARTITION, job_id, "targets_done", "targets_total")

    # --- targets ---------------------------------------------------------------------------
    def target(self, job_id: str, index: int) -> Target:
        return _target(self.targets.get_entity(job_id, target_key(index)))

    def list_targets(self, job_id: str) -> list[Target]:
        found = self.targets.query_entities("PartitionKey eq @j", parameters={"j": job_id})
        return sorted((_target(e) for e in found), key=lambda t: t.index)

    def set_target(self, target: Target, *, etag_guard: bool = False, **fields: Any) -> bool:
        """Update a target row; False when an ETag-guarded update lost a race."""
        entity: dict[str, Any] = {"PartitionKey": target.job_id, "RowKey": target_key(target.index)}
        for key, value in fields.items():
            if key == "plan":
                entity.update(_split_text("plan", json.dumps(value)))
            elif key in ("outputs", "reasons"):
                entity[key] = json.dumps(value)
            else:
                entity[key] = value
        etag = merge(self.targets, entity, target.etag if etag_guard else None)
        if etag is None:
            return False
        target.etag = etag
        return True

    def add_done_chunk(self, job_id: str, index: int) -> tuple[int, int]:
        return increment(self.targets, job_id, target_key(index), "done_chunks", "total_chunks")

    # --- chunks ----------------------------------------------------------------------------
    def add_chunks(self, job_id: str, chunks: list[dict[str, Any]]) -> None:
        rows = [
            {
                "PartitionKey": job_id,
                "RowKey": chunk_key(c["target"], c["seq"]),
                "target": c["target"],
                "seq": c["seq"],
                "path": c["path"],
                "format": c["format"],
                "input_etag": c["etag"],
                "size": c["size"],
                "start": c["start"],
                "end": c["end"],
                "header_end": c.get("header_end", 0),
                "rows": c["rows"],
                "status": "queued",
                "counted": False,
            }
            for c in chunks
        ]
        for start in range(0, len(rows), 100):
            self.chunks.submit_transaction([("upsert", r) for r in rows[start : start + 100]])

    def chunk(self, job_id: str, chunk_id: str) -> Chunk:
        return _chunk(self.chunks.get_entity(job_id, chunk_id))

    def list_chunks(self, job_id: str, target: int | None = None) -> list[Chunk]:
        if target is None:
            found = self.chunks.query_entities("PartitionKey eq @j", parameters={"j": job_id})
        else:
            found = self.chunks.query_entities(
                "PartitionKey eq @j and RowKey ge @lo and RowKey lt @hi",
                parameters={"j": job_id, "lo": f"{target:03d}-", "hi": f"{target:03d}."},
            )
        return sorted((_chunk(e) for e in found), key=lambda c: c.chunk_id)

    def set_chunk(self, chunk: Chunk, *, etag_guard: bool = True, **fields: Any) -> bool:
        """Update a chunk row; False when another delivery of its message changed it first."""
        entity: dict[str, Any] = {"PartitionKey": chunk.job_id, "RowKey": chunk.chunk_id}
        for key, value in fields.items():
            entity[key] = json.dumps(value) if key == "reasons" else value
        etag = merge(self.chunks, entity, chunk.etag if etag_guard else None)
        if etag is None:
            return False
        chunk.etag = etag
        return True
