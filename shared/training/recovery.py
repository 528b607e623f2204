"""What the watchdog needs to re-drive or end a stalled training job (see shared.jobs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.jobs.queue_job import QueueJob, redrive_fields
from shared.tables import iso, parse_iso, utcnow
from shared.training.jobs import UNIT_TERMINAL, JobStore


class TrainingRecovery(QueueJob):
    """The watchdog's hooks of :class:`shared.training.orchestrator.Trainer`."""

    jobs: JobStore

    def _send(self, message: dict[str, Any]) -> None:
        self.send(message)

    def _clean_up(self, job_id: str) -> None:
        raise NotImplementedError

    def active_jobs(self) -> list[dict[str, Any]]:
        return self.jobs.active_raw()

    def last_progress(self, job: dict[str, Any]) -> datetime:
        stamps = [parse_iso(job["created_at"])]
        if job.get("started_at"):
            stamps.append(parse_iso(job["started_at"]))
        stamps += [u.updated_at for u in self.jobs.list_units(job["RowKey"]) if u.updated_at]
        return max(stamps)

    def redrive(self, job: dict[str, Any], stale_before: datetime) -> int:
        job_id = job["RowKey"]
        if job["status"] == "queued" or not job.get("dispatched"):
            self._send({"kind": "plan", "job_id": job_id})
            return 1
        messages = []
        units = self.jobs.list_units(job_id)
        for unit in units:
            stale = unit.status == "running" and (
                unit.updated_at is None or unit.updated_at < stale_before
            )
            if stale and self.jobs.set_unit(unit, status="queued", owner=""):
                unit.status = "queued"  # its worker died: run it again
            if unit.status == "queued" or (
                unit.status in UNIT_TERMINAL and not unit.outputs.get("counted")
            ):
                messages.append({"kind": "unit", "job_id": job_id, "unit_id": unit.unit_id})
        if not messages:
            messages = [{"kind": "finalize", "job_id": job_id}]
        for message in messages:
            self._send(message)
        return len(messages)

    def fail_stalled(self, job: dict[str, Any], reason: str) -> None:
        job_id = job["RowKey"]
        for unit in self.jobs.list_units(job_id):
            if unit.status not in UNIT_TERMINAL:
                self.jobs.set_unit(
                    unit, etag_guard=False, status="failed", error=reason, finished_at=iso(utcnow())
                )
        self.jobs.update(job_id, status="failed", finished_at=iso(utcnow()), error=reason)
        self._clean_up(job_id)

    def mark_redriven(self, job_id: str, redrives: int) -> None:
        self.jobs.update(job_id, **redrive_fields(redrives))
