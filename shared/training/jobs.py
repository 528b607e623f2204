"""Training jobs and their units in Table Storage.

A job row (Table ``Jobs``) holds the counters of the fan-in; each (spec, partition)
unit has a row in ``JobUnits`` (PartitionKey = job id). Job ids start with an inverted
timestamp so listing the partition returns the newest jobs first.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from pydantic import BaseModel, Field

from shared.errors import NotFound
from shared.jobs.queue_job import row_timestamp
from shared.tables import guarded_update, increment, iso, merge, parse_iso, transition, utcnow

PARTITION = "jobs"
TERMINAL = frozenset({"succeeded", "failed", "partially_failed", "cancelled"})
ACTIVE = ("queued", "running", "registering")
UNIT_TERMINAL = frozenset({"succeeded", "failed", "skipped", "cancelled"})
# Progress counters kept on the job row, so a status read is one Table call.
PROGRESS = (
    "partitions_total",
    "partitions_done",
    "partitions_failed",
    "partitions_skipped",
    "rows_total",
    "rows_done",
    "rows_trained",
)

JobStatus = Literal[
    "queued", "running", "registering", "succeeded", "failed", "partially_failed", "cancelled"
]


class UnitResult(BaseModel):
    spec: str
    partition: str | None
    status: str
    model: str | None = None
    version: int | None = None
    metrics: dict[str, float] = {}
    promoted: bool = False
    promotion: dict[str, Any] | None = Field(
        default=None,
        description="Why the version was or was not promoted: rule, metric, both values.",
    )
    n_rows: int | None = None
    onnx: bool | None = None
    error: str | None = None


class Progress(BaseModel):
    """Counters of a job, read from its row alone (cheap to poll)."""

    partitions_total: int = Field(0, description="Partitions planned (skipped included).")
    partitions_done: int = Field(0, description="Partitions trained successfully.")
    partitions_failed: int = 0
    partitions_skipped: int = Field(0, description="Too few rows, or cancelled.")
    rows_total: int = Field(0, description="Rows of the partitions to train.")
    rows_trained: int = Field(0, description="Rows of the partitions trained so far.")
    elapsed_seconds: float | None = Field(None, description="Since the job started running.")
    eta_seconds: float | None = Field(
        None, description="Time left at the rate so far (rows done per second), while running."
    )


class Job(BaseModel):
    job_id: str
    status: JobStatus
    trigger: Literal["http", "timer"]
    created_at: datetime
    created_by: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    specs: list[str]
    total_units: int | None = None
    done_units: int = 0
    progress: Progress = Progress()
    error: str | None = None
    cancelled_by: str | None = None
    results: list[UnitResult] = Field(
        default=[], description="Per partition; filled once the job has finished."
    )


class JobPage(BaseModel):
    items: list[Job]


class Unit(BaseModel):
    job_id: str
    unit_id: str
    spec: str
    partition: str | None
    partition_key: str | None
    status: str
    n_rows: int | None = None
    metrics: dict[str, float] = {}
    error: str | None = None
    outputs: dict[str, Any] = {}
    # The partitions a unit trains ({key, partition, n_rows}, then status, metrics, ...);
    # empty for a spec without partition_by.
    partitions: list[dict[str, Any]] = []
    owner: str | None = None  # id of the queue message whose delivery runs the unit
    updated_at: datetime | None = None
    etag: str | None = None


def reserved_versions_of(raw: dict[str, Any]) -> dict[str, int]:
    """The version number the planner reserved for each partitioned spec of a job row."""
    reserved = json.loads(raw.get("reserved_versions") or "{}")
    return {spec: int(version) for spec, version in reserved.items()}


def new_job_id() -> str:
    return f"{10**13 - int(time.time() * 1000):013d}{secrets.token_hex(4)}"


def _progress(e: dict[str, Any]) -> Progress:
    counts = {k: int(e.get(k) or 0) for k in PROGRESS}
    started = parse_iso(e["started_at"]) if e.get("started_at") else None
    ended = parse_iso(e["finished_at"]) if e.get("finished_at") else None
    elapsed = ((ended or utcnow()) - started).total_seconds() if started else None
    eta = None
    if elapsed is not None and ended is None and e["status"] == "running":
        done, total = counts["rows_done"], counts["rows_total"]
        if done > 0 and elapsed > 0:
            eta = max(0.0, (total - done) * elapsed / done)
    return Progress(
        **{k: v for k, v in counts.items() if k != "rows_done"},
        elapsed_seconds=round(elapsed, 3) if elapsed is not None else None,
        eta_seconds=round(eta, 1) if eta is not None else None,
    )


def _job(e: dict[str, Any], results: list[UnitResult] | None = None) -> Job:
    return Job(
        job_id=e["RowKey"],
        status=e["status"],
        trigger=e["trigger"],
        created_at=parse_iso(e["created_at"]),
        created_by=e["created_by"],
        started_at=parse_iso(e["started_at"]) if e.get("started_at") else None,
        finished_at=parse_iso(e["finished_at"]) if e.get("finished_at") else None,
        specs=json.loads(e["specs"]),
        total_units=e.get("total_units") if e.get("total_units", -1) >= 0 else None,
        done_units=int(e.get("done_units") or 0),
        progress=_progress(e),
        error=e.get("error") or None,
        cancelled_by=e.get("cancelled_by") or None,
        results=results or [],
    )


def _unit(e: dict[str, Any]) -> Unit:
    return Unit(
        job_id=e["PartitionKey"],
        unit_id=e["RowKey"],
        spec=e["spec"],
        partition=e.get("partition") if e.get("has_partition") else None,
        partition_key=e.get("partition_key") or None,
        status=e["status"],
        n_rows=e.get("n_rows"),
        metrics=json.loads(e.get("metrics") or "{}"),
        error=e.get("error") or None,
        outputs=json.loads(e.get("outputs") or "{}"),
        partitions=json.loads(e.get("partitions") or "[]"),
        owner=e.get("owner") or None,
        updated_at=row_timestamp(e),
        etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
    )


class JobStore:
    def __init__(self, jobs: TableClient, units: TableClient) -> None:
        self.jobs = jobs
        self.units = units

    # --- jobs ----------------------------------------------------------------------------
    def create(self, trigger: str, specs: list[str], snapshot: dict[str, Any], by: str) -> Job:
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": new_job_id(),
            "status": "queued",
            "trigger": trigger,
            "created_at": iso(utcnow()),
            "created_by": by,
            "specs": json.dumps(specs),
            "snapshot": json.dumps(snapshot),
            "total_units": -1,
            "done_units": 0,
            "spec_results": "{}",
        }
        self.jobs.create_entity(entity)
        return _job(entity)

    def raw(self, job_id: str) -> dict[str, Any]:
        if not job_id.isalnum() or len(job_id) > 40:
            raise NotFound("No such job.", code="JOB_NOT_FOUND")
        try:
            return self.jobs.get_entity(PARTITION, job_id)
        except ResourceNotFoundError:
            raise NotFound("No such job.", code="JOB_NOT_FOUND") from None

    def get(self, job_id: str) -> Job:
        """The job; per-partition results only once it has finished (while it runs, one
        Table read: the progress counters live on the job row)."""
        e = self.raw(job_id)
        if e["status"] not in TERMINAL:
            return _job(e)
        spec_results = json.loads(e.get("spec_results") or "{}")
        results = []
        for unit in self.list_units(job_id):
            outcome = spec_results.get(unit.spec, {})
            if e["status"] == "cancelled" and unit.status not in UNIT_TERMINAL:
                unit.status = "cancelled"  # its message had not been delivered yet
            for part in unit.partitions or [None]:
                status = (part.get("status") or unit.status) if part else unit.status
                ok = status == "succeeded"
                results.append(
                    UnitResult(
                        spec=unit.spec,
                        partition=part.get("partition") if part else unit.partition,
                        status=status,
                        model=outcome.get("model") if ok else None,
                        version=outcome.get("version") if ok else None,
                        metrics=(part.get("metrics") if part else unit.metrics) or {},
                        promoted=bool(outcome.get("promoted")) and ok,
                        promotion=outcome.get("promotion") if ok else None,
                        n_rows=part.get("n_rows") if part else unit.n_rows,
                        onnx=part.get("onnx") if part else unit.outputs.get("onnx"),
                        error=(part.get("error") if part else unit.error)
                        or (unit.error if part and status != "succeeded" else None)
                        or outcome.get("error"),
                    )
                )
        return _job(e, results)

    def recent(self, limit: int) -> list[Job]:
        found = self.jobs.query_entities(
            "PartitionKey eq @pk", parameters={"pk": PARTITION}, results_per_page=limit
        )
        out = []
        for e in found:
            out.append(_job(e))
            if len(out) >= limit:
                break
        return out

    def active(self, trigger: str) -> list[Job]:
        query = (
            "PartitionKey eq @pk and trigger eq @t and (status eq 'queued' or status eq 'running')"
        )
        return [
            _job(e)
            for e in self.jobs.query_entities(query, parameters={"pk": PARTITION, "t": trigger})
        ]

    def active_raw(self) -> list[dict[str, Any]]:
        """Rows of every job still queued, running or registering (the watchdog's view)."""
        query = (
            "PartitionKey eq @pk and (status eq 'queued' or status eq 'running'"
            " or status eq 'registering')"
        )
        return list(self.jobs.query_entities(query, parameters={"pk": PARTITION}))

    def update(self, job_id: str, **fields: Any) -> None:
        self.jobs.update_entity(
            {"PartitionKey": PARTITION, "RowKey": job_id, **fields}, mode=UpdateMode.MERGE
        )

    def counts(self, job_id: str) -> tuple[int, int]:
        """(done, total) of the job's fan-in counter; total is -1 before planning."""
        e = self.raw(job_id)
        return int(e.get("done_units") or 0), int(e.get("total_units", -1))

    def add_done(self, job_id: str, count: int = 1) -> tuple[int, int]:
        """Atomically add finished units; returns (done, total). ETag-guarded for fan-in."""
        if not job_id.isalnum() or len(job_id) > 40:
            raise NotFound("No such job.", code="JOB_NOT_FOUND")
        return increment(self.jobs, PARTITION, job_id, "done_units", "total_units", count)

    def add_progress(self, job_id: str, deltas: dict[str, int]) -> tuple[int, int]:
        """Add a finished unit's counts to the job row in one ETag-guarded write;
        returns (done_units, total_units) like :meth:`add_done`."""

        def added(e: dict[str, Any]) -> dict[str, int]:
            return {k: int(e.get(k) or 0) + v for k, v in deltas.items()}

        e = guarded_update(
            self.jobs,
            lambda: self.raw(job_id),
            added,
            attempts=500,
            contended="A fan-in counter stayed contended; the step will retry.",
        )
        done = added(e).get("done_units", int(e.get("done_units") or 0))
        return done, int(e.get("total_units", -1))

    def reserved_version(self, job_id: str, spec: str, reserve: Callable[[], int]) -> int:
        """The version reserved for ``spec``'s partition files. A job planned before the
        planner reserved versions (by the previous deployment, still running after a
        deploy) has none: the first unit to ask reserves one (``reserve``) and records it
        on the job row with an ETag-guarded merge, so every unit, the fan-in and the
        cleanups use the same number. A number reserved by a unit that lost that race is
        never used: a gap in the version numbers, as a failed upload leaves."""
        taken: list[int] = []

        def record(e: dict[str, Any]) -> dict[str, Any] | None:
            reserved = reserved_versions_of(e)
            if spec in reserved:
                return None  # recorded already (by another unit, maybe in between)
            taken.append(reserve())
            return {"reserved_versions": json.dumps({**reserved, spec: taken[-1]})}

        if guarded_update(
            self.jobs,
            lambda: self.raw(job_id),
            record,
            contended="The job row stayed contended; the unit will retry.",
        ):
            return taken[-1]
        return reserved_versions_of(self.raw(job_id))[spec]

    def transition(self, job_id: str, allowed: tuple[str, ...], **fields: Any) -> dict | None:
        """Set fields (a new status) only while the job's status is one of ``allowed``.
        The row as it was, or None if refused."""
        self.raw(job_id)  # 404 for an unknown id
        return transition(self.jobs, PARTITION, job_id, allowed, fields)

    def record_spec_result(self, job_id: str, spec: str, outcome: dict[str, Any]) -> None:
        guarded_update(
            self.jobs,
            lambda: self.raw(job_id),
            lambda e: {
                "spec_results": json.dumps(
                    {**json.loads(e.get("spec_results") or "{}"), spec: outcome}
                )
            },
            contended="Could not record the training result; it will retry.",
        )

    # --- units ---------------------------------------------------------------------------
    def add_units(self, job_id: str, units: list[dict[str, Any]]) -> None:
        """Insert unit rows in entity-group batches (same partition, 100 per batch)."""
        rows = [
            {
                "PartitionKey": job_id,
                "RowKey": u["unit_id"],
                "spec": u["spec"],
                "partition": "" if u.get("partition") is None else str(u["partition"]),
                "has_partition": u.get("partition") is not None,
                "partition_key": u.get("partition_key") or "",
                "status": u["status"],
                "n_rows": u.get("n_rows"),
                "error": u.get("error") or "",
                "metrics": "{}",
                "partitions": json.dumps(u.get("partitions") or []),
                # Units that end at planning are counted in the job's done_units there.
                "outputs": json.dumps({"counted": u["status"] in UNIT_TERMINAL}),
            }
            for u in units
        ]
        for start in range(0, len(rows), 100):
            self.units.submit_transaction([("upsert", r) for r in rows[start : start + 100]])

    def unit(self, job_id: str, unit_id: str) -> Unit:
        return _unit(self.units.get_entity(job_id, unit_id))

    def list_units(self, job_id: str) -> list[Unit]:
        return [
            _unit(e)
            for e in self.units.query_entities("PartitionKey eq @j", parameters={"j": job_id})
        ]

    def set_unit(self, unit: Unit, *, etag_guard: bool = True, **fields: Any) -> bool:
        """Update a unit; False when another delivery of the same message changed it first."""
        entity: dict[str, Any] = {"PartitionKey": unit.job_id, "RowKey": unit.unit_id}
        for key, value in fields.items():
            entity[key] = (
                json.dumps(value) if key in ("metrics", "outputs", "partitions") else value
            )
        etag = merge(self.units, entity, unit.etag if etag_guard else None)
        if etag is None:
            return False
        unit.etag = etag
        return True
