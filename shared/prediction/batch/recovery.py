"""What the watchdog needs to re-drive or end a stalled batch scoring job (see shared.jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.jobs.queue_job import QueueJob, redrive_fields
from shared.prediction.batch.jobs import CHUNK_TERMINAL, TERMINAL, ScoringJobStore, Target
from shared.tables import iso, parse_iso, utcnow


class ScoringRecovery(QueueJob):
    """The watchdog's hooks of :class:`shared.prediction.batch.service.BatchScorer`."""

    jobs: ScoringJobStore

    def _send(self, message: dict[str, Any]) -> None:
        self.send(message)

    def _delete_parts(self, target: Target) -> None:
        raise NotImplementedError

    def _finish(self, job_id: str) -> None:
        raise NotImplementedError

    def active_jobs(self) -> list[dict[str, Any]]:
        return self.jobs.active_raw()

    def last_progress(self, job: dict[str, Any]) -> datetime:
        job_id = job["RowKey"]
        stamps = [parse_iso(job["created_at"])]
        if job.get("started_at"):
            stamps.append(parse_iso(job["started_at"]))
        stamps += [t.updated_at for t in self.jobs.list_targets(job_id) if t.updated_at]
        stamps += [c.updated_at for c in self.jobs.list_chunks(job_id) if c.updated_at]
        return max(stamps)

    def redrive(self, job: dict[str, Any], stale_before: datetime) -> int:
        job_id = job["RowKey"]
        if job["status"] == "queued" or not job.get("dispatched"):
            self._send({"kind": "plan", "job_id": job_id})
            return 1
        messages: list[dict[str, Any]] = []
        chunks = self.jobs.list_chunks(job_id)
        for target in self.jobs.list_targets(job_id):
            finalize = {"kind": "finalize", "job_id": job_id, "target": target.index}
            if target.status in TERMINAL:
                if not target.counted:
                    messages.append(finalize)  # finalize of a done target only counts it
                continue
            pending = 0
            for chunk in (c for c in chunks if c.target == target.index):
                stale = chunk.status == "running" and (
                    chunk.updated_at is None or chunk.updated_at < stale_before
                )
                if stale and self.jobs.set_chunk(chunk, status="queued", owner=""):
                    chunk.status = "queued"  # its worker died: score it again
                if chunk.status == "queued" or (
                    chunk.status in CHUNK_TERMINAL and not chunk.counted
                ):
                    messages.append({"kind": "chunk", "job_id": job_id, "chunk_id": chunk.chunk_id})
                pending += chunk.status not in CHUNK_TERMINAL
            if not pending and target.total_chunks >= 0:
                messages.append(finalize)
        for message in messages:
            self._send(message)
        if not messages:
            self._finish(job_id)  # every target done and counted: only the job's end is left
        return len(messages)

    def fail_stalled(self, job: dict[str, Any], reason: str) -> None:
        job_id = job["RowKey"]
        for target in self.jobs.list_targets(job_id):
            if target.status not in TERMINAL:
                self.jobs.set_target(
                    target, status="failed", error=reason, finished_at=iso(utcnow())
                )
            self._delete_parts(target)
        self.jobs.update(job_id, status="failed", error=reason, finished_at=iso(utcnow()))

    def mark_redriven(self, job_id: str, redrives: int) -> None:
        self.jobs.update(job_id, **redrive_fields(redrives))
