"""A training job from start to registry: plan, fan out per (spec, partition), fan in.

``start`` records a job and queues a *plan* message; the planner slices partitioned
datasets into staging blobs, reserves each partitioned spec's next version and queues
one *unit* message per group of partitions; each unit trains, writes its partitions'
files into the reserved version and stages a record of them; the unit that completes
the job queues *finalize*, which registers one version per spec and applies the
promotion rule. Every step is safe to run twice (queue delivery is at-least-once).
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from shared.errors import Conflict, NotFound, ValidationFailed
from shared.idempotency import IdempotencyStore
from shared.observability import get_logger
from shared.registry.store import ModelRegistry
from shared.resources import Containers
from shared.storage_deadline import map_in_threads
from shared.tables import iso, utcnow
from shared.training.jobs import (
    ACTIVE,
    TERMINAL,
    UNIT_TERMINAL,
    Job,
    JobStore,
    Unit,
    reserved_versions_of,
)
from shared.training.recovery import TrainingRecovery
from shared.training.registration import Registration
from shared.training.schemas import TrainingSpec
from shared.training.specs import SpecStore
from shared.training.staging import (
    CHUNK_ROWS,
    count_partitions,
    partition_key,
    plain,
    plan_units,
    stage_units,
)
from shared.training.unit_training import UnitTraining
from shared.training.units import MAX_PARTITIONS_PER_UNIT, unbundle

__all__ = ["CHUNK_ROWS", "STAGING_CONTAINER", "Trainer", "partition_key"]

STAGING_CONTAINER = Containers.TRAINING_STAGING
log = get_logger("training")


def _unit_id(spec: str, index: int) -> str:
    return f"{spec}~{index:06d}"


class NothingToTrain(ValidationFailed):
    """POST /train for every enabled spec found none: the HTTP route answers 200 'skipped'
    (a scheduled pipeline on a fresh install must not fail), the timer starts nothing."""

    code = "NOTHING_TO_TRAIN"


class Trainer(TrainingRecovery, UnitTraining, Registration):
    kind = "training"

    def __init__(
        self,
        specs: SpecStore,
        jobs: JobStore,
        datasets: Any,
        registry: ModelRegistry,
        idempotency: IdempotencyStore,
        queue: QueueClient,
        staging: ContainerClient,
        max_dequeue_count: int = 5,
        unit_rows: int = 50_000,
        threads: int = 1,
    ) -> None:
        self.specs = specs
        self.jobs = jobs
        self.datasets = datasets
        self.registry = registry
        self.idempotency = idempotency
        self.queue = queue
        self.staging = staging
        self.max_dequeue_count = max_dequeue_count
        self.unit_rows = unit_rows
        self.threads = threads

    # --- start -----------------------------------------------------------------------------
    def start(
        self,
        names: list[str] | None,
        trigger: str,
        by: str,
        idempotency_key: str | None = None,
    ) -> tuple[Job, bool]:
        """Queue a job for the named specs (default: every enabled one). (job, replayed)."""
        specs = [self.specs.get(n) for n in names] if names else self.specs.all(enabled_only=True)
        if not specs:
            raise NothingToTrain("There is no enabled training spec to run.")
        scope = f"train:{by}"
        if idempotency_key:
            earlier = self.idempotency.begin(
                scope, idempotency_key, ",".join(sorted(s.name for s in specs))
            )
            if earlier is not None:
                return self.jobs.get(earlier["job_id"]), True
        try:
            job = self.jobs.create(
                trigger,
                [s.name for s in specs],
                {s.name: s.model_dump(mode="json") for s in specs},
                by,
            )
            self._send({"kind": "plan", "job_id": job.job_id})
        except Exception:
            if idempotency_key:
                self.idempotency.abandon(scope, idempotency_key)
            raise
        if idempotency_key:
            self.idempotency.complete(scope, idempotency_key, {"job_id": job.job_id})
        log.info(
            "training job started",
            extra={"job_id": job.job_id, "specs": job.specs, "by": by, "trigger": trigger},
        )
        return job, False

    def start_scheduled(self) -> Job | None:
        """The timer's job; None while a timer job still runs or when nothing is enabled."""
        if self.jobs.active("timer"):
            return None
        # One job per scheduled hour, however often the timer fires (retries, restarts).
        key = utcnow().strftime("timer:%Y-%m-%dT%H")
        try:
            job, _ = self.start(None, "timer", "timer", idempotency_key=key)
        except ValidationFailed:
            return None
        return job

    def validate_spec(self, body: Any) -> None:
        """Check a spec against its dataset's columns before it is stored (422 naming them)."""
        from shared.ml.train import TrainingError, validate_spec  # lazy: the ML stack

        columns = {c.name: c.dtype for c in self.datasets.get(body.dataset).columns}
        try:
            validate_spec(
                columns,
                body.target,
                body.features,
                body.task,
                body.algorithm,
                body.params,
                body.partition_by,
            )
        except TrainingError as exc:
            raise ValidationFailed(
                str(exc), [{"loc": ["body"], "msg": str(exc), "type": "training_spec"}]
            ) from None

    def _send(self, message: dict[str, Any]) -> None:
        self.send(message)

    def _snapshot(self, job_id: str) -> dict[str, TrainingSpec]:
        return self._snapshot_of(self.jobs.raw(job_id))

    @staticmethod
    def _snapshot_of(raw: dict[str, Any]) -> dict[str, TrainingSpec]:
        specs = json.loads(raw["snapshot"])
        return {name: TrainingSpec.model_validate(body) for name, body in specs.items()}

    # --- dispatch of queue messages ----------------------------------------------------------
    def handle(
        self, message: dict[str, Any], dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        kind, job_id = message.get("kind"), str(message.get("job_id", ""))
        if kind == "plan":
            self.plan(job_id)
        elif kind == "unit":
            self.run_unit(job_id, str(message["unit_id"]), dequeue_count, message_id)
        elif kind == "finalize":
            self.finalize(job_id)
        else:
            log.warning("ignored a training message of unknown kind", extra={"kind": kind})

    def give_up(self, message: dict[str, Any], reason: str) -> None:
        """A message exhausted its retries (poison): record the failure so the job ends."""
        job_id = str(message.get("job_id", ""))
        if message.get("kind") == "unit":
            unit = self.jobs.unit(job_id, str(message["unit_id"]))
            if unit.status not in UNIT_TERMINAL:
                parts = [{**p, "status": "failed", "error": reason} for p in unit.partitions]
                self.jobs.set_unit(
                    unit, etag_guard=False, status="failed", error=reason, partitions=parts
                )
                unit.status, unit.partitions = "failed", parts
            self._count(unit)
        else:
            stage = message.get("kind", "a step")
            error = f"{stage} failed: {reason}"
            if self.jobs.transition(
                job_id, ACTIVE, status="failed", finished_at=iso(utcnow()), error=error
            ):
                log.error("training job failed", extra={"job_id": job_id, "reason": error})
                self._clean_up(job_id)

    # --- plan ------------------------------------------------------------------------------
    def plan(self, job_id: str) -> None:
        """Record the units, then dispatch them; a redelivery finishes either step."""
        raw = self.jobs.raw(job_id)
        if raw["status"] in TERMINAL or raw.get("dispatched"):
            return  # planned and dispatched already (a redelivered message)
        if raw["status"] == "queued" and not self._record_units(job_id):
            return  # cancelled while planning
        # Every unit still queued gets its message (again, if an earlier delivery died
        # part-way: a unit that already runs ignores the duplicate); none left: fan in.
        queued = [u for u in self.jobs.list_units(job_id) if u.status == "queued"]
        messages = [{"kind": "unit", "job_id": job_id, "unit_id": u.unit_id} for u in queued]
        self.dispatch(
            messages or [{"kind": "finalize", "job_id": job_id}],
            lambda: self.jobs.update(job_id, dispatched=True),
        )

    def _record_units(self, job_id: str) -> bool:
        units: list[dict[str, Any]] = []
        for spec in self._snapshot(job_id).values():
            try:
                units += self._plan_spec(job_id, spec)
            except (NotFound, ValidationFailed, ValueError, KeyError) as exc:
                units.append(
                    {
                        "unit_id": _unit_id(spec.name, 0),
                        "spec": spec.name,
                        "partition": None,
                        "status": "failed",
                        "error": f"planning failed: {exc}",
                    }
                )
        # A partitioned spec's units write their files straight into its next version,
        # taken now (one number per spec; unused if the job ends without registering).
        trained = {u["spec"] for u in units if u["status"] == "queued" and u.get("partitions")}
        reserved = {name: self.registry.reserve_version(name) for name in sorted(trained)}
        self.jobs.add_units(job_id, units)
        finished = sum(1 for u in units if u["status"] in UNIT_TERMINAL)
        parts = [(u["status"], p) for u in units for p in (u.get("partitions") or [u])]
        started = self.jobs.transition(
            job_id,
            ("queued",),
            status="running",
            started_at=iso(utcnow()),
            total_units=len(units),
            done_units=finished,
            partitions_total=len(parts),
            partitions_skipped=sum(1 for status, _ in parts if status == "skipped"),
            partitions_failed=sum(1 for status, _ in parts if status == "failed"),
            rows_total=sum(int(p.get("n_rows") or 0) for status, p in parts if status == "queued"),
            reserved_versions=json.dumps(reserved),
        )
        if started is None:  # cancelled while planning: drop what was staged
            self._clean_up(job_id, reserved)
        return started is not None

    def _plan_spec(self, job_id: str, spec: TrainingSpec) -> list[dict[str, Any]]:
        if not spec.partition_by:
            rows = self.datasets.get(spec.dataset).row_count
            small = rows < spec.min_rows
            return [
                {
                    "unit_id": _unit_id(spec.name, 0),
                    "spec": spec.name,
                    "partition": None,
                    "status": "skipped" if small else "queued",
                    "n_rows": rows,
                    "error": f"{rows} rows < min_rows {spec.min_rows}" if small else None,
                }
            ]
        counts, values = count_partitions(self.datasets, spec.dataset, spec.partition_by)
        groups, skipped = plan_units(counts, values, spec.min_rows, self.unit_rows)
        unit_of_value = {values[k]: i for i, keys in enumerate(groups) for k in keys}
        stage_units(self.datasets, self.staging, job_id, spec, unit_of_value)

        def entry(key: str, **more: Any) -> dict[str, Any]:
            return {"key": key, "partition": plain(values[key]), "n_rows": counts[key], **more}

        units = []
        for index, keys in enumerate(groups):
            units.append(
                {
                    "unit_id": _unit_id(spec.name, index),
                    "spec": spec.name,
                    "partition": plain(values[keys[0]]) if len(keys) == 1 else None,
                    "status": "queued",
                    "n_rows": sum(counts[k] for k in keys),
                    "partitions": [entry(k) for k in keys],
                }
            )
        # Partitions with too few rows: recorded (skipped) in units that never run.
        for start in range(0, len(skipped), MAX_PARTITIONS_PER_UNIT):
            keys = skipped[start : start + MAX_PARTITIONS_PER_UNIT]
            units.append(
                {
                    "unit_id": _unit_id(spec.name, len(groups) + start // MAX_PARTITIONS_PER_UNIT),
                    "spec": spec.name,
                    "partition": None,
                    "status": "skipped",
                    "n_rows": sum(counts[k] for k in keys),
                    "partitions": [
                        entry(
                            k,
                            status="skipped",
                            error=f"{counts[k]} rows < min_rows {spec.min_rows}",
                        )
                        for k in keys
                    ],
                }
            )
        return units

    def cancel(self, job_id: str, by: str) -> Job:
        """Cancel a queued or running job: units not started are skipped, running ones
        stop at their next partition, nothing is registered. Cancelling twice is a no-op."""
        before = self.jobs.transition(
            job_id,
            ("queued", "running"),
            status="cancelled",
            cancelled_by=by,
            finished_at=iso(utcnow()),
            error=f"cancelled by {by}",
        )
        if before is None:
            job = self.jobs.get(job_id)
            if job.status == "cancelled":
                return job
            raise Conflict(
                f"The job is {job.status}: only a queued or running job can be cancelled.",
                code="JOB_NOT_CANCELLABLE",
            )
        log.info("training job cancelled", extra={"job_id": job_id, "by": by})
        self._clean_up(job_id)
        return self.jobs.get(job_id)

    # --- fan-in -------------------------------------------------------------------------------
    def finalize(self, job_id: str) -> None:
        raw = self.jobs.raw(job_id)
        if raw["status"] not in ACTIVE:
            return
        units = self.jobs.list_units(job_id)
        if any(u.status not in UNIT_TERMINAL for u in units):
            return  # a unit was double counted; the last real one will finalize
        if raw["status"] != "registering" and not self.jobs.transition(
            job_id, ("queued", "running"), status="registering"
        ):
            return  # cancelled meanwhile: nothing is registered
        done_specs = json.loads(raw.get("spec_results") or "{}")
        for name, spec in self._snapshot(job_id).items():
            if name in done_specs:
                continue
            mine = [u for u in units if u.spec == name]
            outcome = self._finalize_spec(job_id, spec, mine)
            self.jobs.record_spec_result(job_id, name, outcome)
        statuses = [p.get("status") or u.status for u in units for p in u.partitions or [{}]]
        failed = statuses.count("failed")
        status = (
            "succeeded"
            if failed == 0
            else "failed"
            if failed == len(statuses)
            else ("partially_failed")
        )
        self.jobs.update(job_id, status=status, finished_at=iso(utcnow()))
        self._clean_up(job_id)
        log.log(
            40 if status == "failed" else 20,
            "training job finished",
            extra={
                "job_id": job_id,
                "status": status,
                "partitions": len(statuses),
                "failed": failed,
                "reason": next((u.error for u in units if u.error), None) if failed else None,
            },
        )

    def _clean_up(self, job_id: str, reserved: dict[str, int] | None = None) -> None:
        """Drop the job's staging blobs and the files of versions it reserved but did not
        register (a registered version is never touched: see ``discard_reserved``)."""

        def delete(name: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.staging.delete_blob(name)

        for name, version in (self._reserved(job_id) if reserved is None else reserved).items():
            self.registry.discard_reserved(name, version)
        names = [b.name for b in self.staging.list_blobs(name_starts_with=f"{job_id}/")]
        map_in_threads(delete, names)

    def _reserved(self, job_id: str) -> dict[str, int]:
        return reserved_versions_of(self.jobs.raw(job_id))

    def reserved_versions(self) -> set[tuple[str, int]]:
        """(model, version) reserved by jobs still running: the registry's orphan sweep
        keeps their files, which have no version row until the fan-in."""
        return {
            (name, version)
            for job in self.jobs.active_raw()
            for name, version in reserved_versions_of(job).items()
        }

    def _read(self, path: str) -> bytes:
        return self.staging.download_blob(path).readall()

    def _staged_files(self, unit: Unit) -> dict[str, dict[str, bytes]]:
        """A whole (not partitioned) model's staged files, ``{"_all": {filename: bytes}}``."""
        name = unit.outputs.get("bundle")
        return unbundle(self._read(name)) if name else {}

    def _finalize_spec(self, job_id: str, spec: TrainingSpec, units: list[Unit]) -> dict[str, Any]:
        ok = [u for u in units if u.status == "succeeded"]
        if not ok:
            return {
                "model": spec.name,
                "version": None,
                "promoted": False,
                "error": "no unit of this spec succeeded",
            }
        scope, key = "train-finalize", f"{job_id}:{spec.name}"
        earlier = self.idempotency.begin(scope, key, key)
        if earlier is not None:
            return earlier
        try:
            outcome = self._register(job_id, spec, ok, units)
        except Exception:
            self.idempotency.abandon(scope, key)
            raise
        self.idempotency.complete(scope, key, outcome)
        return outcome
