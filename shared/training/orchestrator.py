"""A training job from start to registry: plan, fan out per (spec, partition), fan in.

``start`` records a job and queues a *plan* message; the planner slices partitioned
datasets into staging blobs and queues one *unit* message per (spec, partition); each
unit trains and stages its outputs; the unit that completes the job queues *finalize*,
which registers one version per spec and applies the promotion rule. Every step is
safe to run twice (queue delivery is at-least-once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from shared import metrics
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.idempotency import IdempotencyStore
from shared.jobs.queue_job import claim
from shared.observability import get_logger
from shared.registry.schemas import Lineage, Promotion, VersionMetadata
from shared.registry.store import (
    LOWER_IS_BETTER,
    ModelRegistry,
    NewFile,
    PlacedFile,
    find_file,
)
from shared.tables import iso, utcnow
from shared.training.jobs import ACTIVE, TERMINAL, UNIT_TERMINAL, Job, JobStore, Unit
from shared.training.plots import plot_path, training_plots
from shared.training.recovery import TrainingRecovery
from shared.training.specs import SpecStore, TrainingSpec
from shared.training.staging import (
    CHUNK_ROWS,
    count_partitions,
    partition_key,
    plain,
    plan_units,
    read_unit_frame,
    stage_units,
    unit_prefix,
)
from shared.training.units import MAX_ERROR_CHARS, MAX_PARTITIONS_PER_UNIT, bundle, unbundle

__all__ = ["CHUNK_ROWS", "STAGING_CONTAINER", "Trainer", "partition_key"]

STAGING_CONTAINER = "training-staging"
# A running unit looks at its job's status (cancelled?) at most this often.
CANCEL_CHECK_SECONDS = 1.0
log = get_logger("training")


def _unit_id(spec: str, index: int) -> str:
    return f"{spec}~{index:06d}"


class NothingToTrain(ValidationFailed):
    """POST /train for every enabled spec found none: the HTTP route answers 200 'skipped'
    (a scheduled pipeline on a fresh install must not fail), the timer starts nothing."""

    code = "NOTHING_TO_TRAIN"


class Trainer(TrainingRecovery):
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
        )
        if started is None:  # cancelled while planning: drop what was staged
            self._delete_staging(job_id)
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

    # --- one unit ----------------------------------------------------------------------------
    def run_unit(
        self, job_id: str, unit_id: str, dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        unit = self.jobs.unit(job_id, unit_id)
        if unit.status in UNIT_TERMINAL:
            self._count(unit)  # the previous delivery may have died before counting
            return
        raw = self.jobs.raw(job_id)
        if raw["status"] == "cancelled":
            self._stop_cancelled(unit)  # not started: skipped
            return
        if not claim(
            unit.status,
            unit.owner,
            message_id,
            lambda: self.jobs.set_unit(
                unit, status="running", owner=message_id or "", started_at=iso(utcnow())
            ),
        ):
            return  # another delivery owns it
        spec = self._snapshot_of(raw)[unit.spec]
        if unit.partitions:
            done = self._train_partitions(job_id, spec, unit, dequeue_count)
        else:
            done = self._train_whole(job_id, spec, unit, dequeue_count)
        if done:
            self._count(self.jobs.unit(job_id, unit_id))

    def _fit(self, spec: TrainingSpec, frame: Any) -> Any:
        from shared.ml.train import train_model  # lazy: the ML stack

        trained = train_model(
            frame,
            target=spec.target,
            features=spec.features,
            task=spec.task,
            algorithm=spec.algorithm,
            params=spec.params,
            seed=spec.seed,
            holdout_fraction=spec.holdout_fraction,
            exclude=[spec.partition_by] if spec.partition_by else [],
            threads=self.threads,
        )
        trained.plots = training_plots(trained, frame)
        return trained

    def _attempt(self, fit: Any, dequeue_count: int) -> tuple[Any, str | None]:
        """(trained, None) or (None, why it failed for good). A transient failure (storage,
        memory) raises while retries are left, so the host redelivers the message."""
        from shared.ml.train import TrainingError  # lazy: the ML stack

        started = time.perf_counter()
        try:
            trained = fit()
            metrics.observe_training_unit("succeeded", time.perf_counter() - started)
            return trained, None
        except (TrainingError, ValueError, KeyError) as exc:
            # Bad data or a bad spec fails the same way on every retry: fail it now.
            metrics.observe_training_unit("failed", time.perf_counter() - started)
            return None, str(exc)[:1000]
        except Exception as exc:
            if dequeue_count < self.max_dequeue_count:
                metrics.observe_training_unit("retried", time.perf_counter() - started)
                raise
            metrics.observe_training_unit("failed", time.perf_counter() - started)
            return None, f"{type(exc).__name__}: {exc}"[:1000]

    def _train_whole(self, job_id: str, spec: TrainingSpec, unit: Unit, dequeue_count: int) -> bool:
        frame = None

        def fit() -> Any:
            nonlocal frame
            frame = self._unit_frame(job_id, spec, unit)
            return self._fit(spec, frame)

        trained, error = self._attempt(fit, dequeue_count)
        if self._cancelled(job_id):
            return self._stop_cancelled(unit)
        if trained is None:
            self.jobs.set_unit(unit, status="failed", error=error, finished_at=iso(utcnow()))
            return True
        outputs = self._stage_outputs(job_id, spec, unit, {"_all": _files(trained)})
        self.jobs.set_unit(
            unit,
            status="succeeded",
            metrics=trained.metrics,
            n_rows=len(frame) if frame is not None else None,
            outputs={**outputs, "onnx": trained.onnx_bytes is not None},
            finished_at=iso(utcnow()),
        )
        return True

    def _train_partitions(
        self, job_id: str, spec: TrainingSpec, unit: Unit, dequeue_count: int
    ) -> bool:
        """Train each partition of the unit; one that fails fails alone. Between
        partitions the job's status is checked, so a cancel stops the unit there."""
        frame = read_unit_frame(self.staging, _prefix(job_id, spec.name, unit.unit_id))
        by_key = {
            partition_key(value): rows
            for value, rows in frame.groupby(spec.partition_by, sort=False, dropna=True)
        }
        del frame
        results, files = [], {}
        checked = time.monotonic()
        for entry in unit.partitions:
            if time.monotonic() - checked > CANCEL_CHECK_SECONDS:
                checked = time.monotonic()
                if self._cancelled(job_id):
                    return self._stop_cancelled(unit)
            rows = by_key.pop(entry["key"], None)
            if rows is None:
                results.append({**entry, "status": "failed", "error": "no rows to train on"})
                continue
            trained, error = self._attempt(
                lambda rows=rows: self._fit(spec, rows.reset_index(drop=True)), dequeue_count
            )
            if trained is None:
                results.append({**entry, "status": "failed", "error": error[:MAX_ERROR_CHARS]})
                continue
            files[entry["key"]] = _files(trained)
            results.append(
                {
                    **entry,
                    "status": "succeeded",
                    "n_rows": len(rows),
                    "metrics": trained.metrics,
                    "onnx": trained.onnx_bytes is not None,
                }
            )
        if self._cancelled(job_id):
            return self._stop_cancelled(unit)
        outputs = self._stage_outputs(job_id, spec, unit, files) if files else {}
        failed = [r for r in results if r["status"] == "failed"]
        self.jobs.set_unit(
            unit,
            status="failed" if len(failed) == len(results) else "succeeded",
            partitions=results,
            error=failed[0]["error"] if len(failed) == len(results) else "",
            outputs=outputs,
            finished_at=iso(utcnow()),
        )
        return True

    def _cancelled(self, job_id: str) -> bool:
        return self.jobs.raw(job_id)["status"] == "cancelled"

    def _stop_cancelled(self, unit: Unit) -> bool:
        """End a unit of a cancelled job without training (further): nothing staged."""
        parts = [{**p, "status": "cancelled"} for p in unit.partitions]
        self.jobs.set_unit(
            unit, etag_guard=False, status="cancelled", partitions=parts, error="job cancelled"
        )
        return False

    def _count(self, unit: Unit) -> None:
        job_id = unit.job_id
        parts = unit.partitions or [{"status": unit.status, "n_rows": unit.n_rows or 0}]

        def rows(statuses: tuple[str, ...]) -> int:
            return sum(int(p.get("n_rows") or 0) for p in parts if p.get("status") in statuses)

        deltas = {
            "done_units": 1,
            "partitions_done": sum(p.get("status") == "succeeded" for p in parts),
            "partitions_failed": sum(p.get("status") == "failed" for p in parts),
            "partitions_skipped": sum(p.get("status") == "cancelled" for p in parts),
            "rows_done": rows(("succeeded", "failed")),
            "rows_trained": rows(("succeeded",)),
        }
        self.fan_in(
            bool(unit.outputs.get("counted")),
            lambda: self.jobs.add_progress(job_id, deltas),
            lambda: self.jobs.set_unit(
                unit, etag_guard=False, outputs={**unit.outputs, "counted": True}
            ),
            lambda: self.jobs.counts(job_id),
            lambda: self._send({"kind": "finalize", "job_id": job_id}),
        )

    def _unit_frame(self, job_id: str, spec: TrainingSpec, unit: Unit) -> Any:
        import pandas as pd

        parts = list(self.datasets.iter_frames(spec.dataset, chunksize=CHUNK_ROWS))
        if not parts:
            raise ValueError("no rows to train on")
        return pd.concat(parts, ignore_index=True)

    def _stage_outputs(
        self, job_id: str, spec: TrainingSpec, unit: Unit, files: dict[str, dict[str, bytes]]
    ) -> dict[str, Any]:
        """Every partition's files in one staged blob (one upload per unit)."""
        name = _prefix(job_id, spec.name, unit.unit_id) + "out.zip"
        self.staging.upload_blob(name, bundle(files), overwrite=True)
        return {"bundle": name}

    # --- cancel ---------------------------------------------------------------------------------
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
        self._delete_staging(job_id)
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
        self._delete_staging(job_id)
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

    def _delete_staging(self, job_id: str) -> None:
        def delete(name: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.staging.delete_blob(name)

        names = [b.name for b in self.staging.list_blobs(name_starts_with=f"{job_id}/")]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="cleanup") as pool:
            list(pool.map(delete, names))

    def _read(self, path: str) -> bytes:
        return self.staging.download_blob(path).readall()

    def _bundles(self, units: list[Unit]) -> dict[str, dict[str, bytes]]:
        """Every staged partition's files, ``{partition key: {filename: bytes}}`` (the
        units' bundles read in parallel: one read per unit)."""
        names = [u.outputs["bundle"] for u in units if u.outputs.get("bundle")]
        out: dict[str, dict[str, bytes]] = {}
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="fan-in") as pool:
            for files in pool.map(lambda n: unbundle(self._read(n)), names):
                out.update(files)
        return out

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

    def _register(
        self, job_id: str, spec: TrainingSpec, ok: list[Unit], units: list[Unit]
    ) -> dict[str, Any]:
        dataset = self.datasets.get(spec.dataset)
        staged = self._bundles(ok)
        first = json.loads(next(iter(staged.values()))["training.json"])
        meta = VersionMetadata(
            description=f"Trained by job {job_id} from dataset {spec.dataset}.",
            params={
                "algorithm": spec.algorithm,
                "params": first["params"],
                "target": spec.target,
                "partition_by": spec.partition_by,
                "seed": spec.seed,
                "holdout_fraction": spec.holdout_fraction,
                "min_rows": spec.min_rows,
                "classes": first.get("classes"),
            },
            features=first["features"],
            task=first["task"],
            lineage=Lineage(job_id=job_id, dataset=spec.dataset, dataset_sha256=dataset.sha256),
            tags={"trained_by": "platform", "spec": spec.name},
        )
        if not spec.partition_by:
            unit, files = ok[0], staged["_all"]
            meta.metrics = unit.metrics
            meta.promotion = self._promotion(spec, meta.metrics, first.get("primary_metric"))
            placed = []
            if "model.onnx" in files:
                placed.append(PlacedFile("serving.onnx", files["model.onnx"], "serving", "onnx"))
            for plot in _plots(files):
                placed.append(PlacedFile(plot, files[plot], "artifact", "png"))
            info = self.registry.register(
                spec.name,
                "skops",
                NewFile("model.skops", files["model.skops"]),
                [
                    NewFile("profile.json", files["profile.json"]),
                    NewFile("training.json", files["training.json"]),
                ],
                meta,
                created_by=f"training:{job_id}",
                placed=placed,
            )
        else:
            info = self._register_partitioned(
                job_id, spec, staged, units, meta, first.get("primary_metric")
            )
        promotion = info.promotion
        assert promotion is not None
        if promotion.promoted:
            self.registry.set_alias(spec.name, "champion", info.version, by="training")
        return {
            "model": spec.name,
            "version": info.version,
            "promoted": promotion.promoted,
            "promotion": promotion.model_dump(),
        }

    def _register_partitioned(
        self,
        job_id: str,
        spec: TrainingSpec,
        staged: dict[str, dict[str, bytes]],
        units: list[Unit],
        meta: VersionMetadata,
        primary: str | None,
    ) -> Any:
        """One version with every partition trained, in one pass (uploads in parallel)."""
        partitions: dict[str, Any] = {}
        placed: list[PlacedFile] = []
        entries = [p for u in units for p in u.partitions]
        ok = [p for p in entries if p.get("status") == "succeeded" and p["key"] in staged]
        for part in ok:
            key, files = part["key"], staged[part["key"]]
            entry = {
                "key": key,
                "metrics": part.get("metrics") or {},
                "n_rows": part.get("n_rows"),
                "skops": f"partitions/{key}/model.skops",
                "onnx": None,
                "profile": f"partitions/{key}/profile.json",
                "carried_over_from": None,
            }
            placed.append(PlacedFile(entry["skops"], files["model.skops"], "partition", "skops"))
            placed.append(PlacedFile(entry["profile"], files["profile.json"], "partition"))
            if "model.onnx" in files:
                entry["onnx"] = f"partitions/{key}/model.onnx"
                placed.append(PlacedFile(entry["onnx"], files["model.onnx"], "partition", "onnx"))
            entry["plots"] = [f"partitions/{key}/{plot}" for plot in _plots(files)]
            for plot, relative in zip(_plots(files), entry["plots"], strict=True):
                placed.append(PlacedFile(relative, files[plot], "partition", "png"))
            partitions[str(part["partition"])] = entry
        failed = [p["partition"] for p in entries if p.get("status") == "failed"]
        partitions.update(self._carry_over(spec, failed, placed))
        total_rows = sum(p.get("n_rows") or 0 for p in ok) or 1
        names = sorted({m for p in ok for m in p.get("metrics") or {}})
        meta.metrics = {
            m: sum(p["metrics"][m] * (p.get("n_rows") or 0) for p in ok if m in p["metrics"])
            / total_rows
            for m in names
        }
        meta.metrics["partitions_trained"] = float(len(ok))
        meta.metrics["partitions_failed"] = float(len(failed))
        meta.metrics["partitions_skipped"] = float(
            sum(p.get("status") == "skipped" for p in entries)
        )
        meta.promotion = self._promotion(spec, meta.metrics, primary)
        manifest = {
            "partition_by": spec.partition_by,
            "task": meta.task,
            "features": [f.model_dump() for f in meta.features or []],
            "partitions": partitions,
            # Hashes of the partition files: the registry row records only the manifest's.
            "files": {
                p.relative_path: {
                    "sha256": hashlib.sha256(p.data).hexdigest(),
                    "size_bytes": len(p.data),
                    "format": p.format,
                }
                for p in placed
            },
        }
        return self.registry.register(
            spec.name,
            "partitioned",
            NewFile("model.json", json.dumps(manifest, sort_keys=True).encode()),
            [],
            meta,
            created_by=f"training:{job_id}",
            placed=placed,
        )

    def _carry_over(
        self, spec: TrainingSpec, failed: list[Any], placed: list[PlacedFile]
    ) -> dict[str, Any]:
        """A failed partition keeps serving the sub-model of the previous version."""
        if not failed:
            return {}
        try:
            previous = self.registry.get_version(spec.name, self.registry.resolve(spec.name))
        except NotFound:
            return {}
        if previous.format != "partitioned":
            return {}
        manifest_file = next(f for f in previous.files if f.role == "model")
        previous_manifest = json.loads(self.registry.read_file(manifest_file))
        old = previous_manifest["partitions"]
        carried = {}
        for partition in failed:
            entry = old.get(str(partition))
            if entry is None:
                continue
            entry = {
                **entry,
                "carried_over_from": entry.get("carried_over_from") or previous.version,
            }
            kept = [entry.get(field) for field in ("skops", "onnx", "profile")]
            for relative in [r for r in kept if r] + list(entry.get("plots") or []):
                stored = find_file(previous, relative, previous_manifest)
                if stored is None:
                    raise ValueError(f"version {previous.version} lacks {relative}")
                placed.append(
                    PlacedFile(
                        relative, self.registry.read_file(stored), "partition", stored.format
                    )
                )
            carried[str(partition)] = entry
        return carried

    def _promotion(
        self, spec: TrainingSpec, metrics: dict[str, float], primary: str | None
    ) -> Promotion:
        """The rule's verdict, with the numbers it compared (recorded on the version)."""
        if spec.promote == "manual":
            return Promotion(
                promoted=False,
                rule="manual",
                reason="The spec promotes manually: approve the version or move the alias.",
            )
        if spec.promote == "always":
            return Promotion(promoted=True, rule="always", reason="The spec always promotes.")
        try:
            champion = self.registry.get_version(
                spec.name, self.registry.get_alias(spec.name, "champion").version
            )
        except NotFound:
            return Promotion(
                promoted=True, rule="if_better", reason="No champion yet: the first is promoted."
            )
        base = {"rule": "if_better", "champion_version": champion.version}
        if primary is None or primary not in metrics:
            return Promotion(
                promoted=True,
                reason="An anomaly model has no holdout quality metric to compare: promoted.",
                **base,
            )
        lower = primary.lower() in LOWER_IS_BETTER
        base |= {"metric": primary, "higher_is_better": not lower}
        base["candidate_value"] = metrics[primary]
        if (
            champion.params.get("seed") != spec.seed
            or champion.params.get("holdout_fraction") != spec.holdout_fraction
        ):
            return Promotion(
                promoted=True,
                reason="The champion was scored on another holdout (seed or fraction): its"
                f" {primary} is not comparable, so the new version is promoted.",
                **base,
            )
        theirs = champion.metrics.get(primary)
        if theirs is None:
            return Promotion(
                promoted=True, reason=f"The champion has no {primary}: promoted.", **base
            )
        base["champion_value"] = theirs
        ours = metrics[primary]
        better = ours < theirs if lower else ours > theirs
        comparison = "lower" if lower else "higher"
        verdict = "promoted" if better else "not promoted"
        return Promotion(
            promoted=better,
            reason=f"{primary} {ours:.6g} vs champion v{champion.version}'s {theirs:.6g}"
            f" ({comparison} is better): {verdict}.",
            **base,
        )


def _prefix(job_id: str, spec: str, unit_id: str) -> str:
    return unit_prefix(job_id, spec, int(unit_id.rsplit("~", 1)[1]))


def _files(trained: Any) -> dict[str, bytes]:
    """The files a trained model stages (and the registry stores)."""
    summary = {
        "task": trained.task,
        "algorithm": trained.algorithm,
        "params": trained.params,
        "features": trained.features,
        "target": trained.target,
        "classes": trained.classes,
        "primary_metric": trained.primary_metric,
        "n_train": trained.n_train,
        "n_holdout": trained.n_holdout,
        "onnx_parity": trained.onnx_parity,
    }
    files = {
        "model.skops": trained.skops_bytes,
        "profile.json": json.dumps(trained.profile).encode(),
        "training.json": json.dumps(summary, default=str).encode(),
    }
    if trained.onnx_bytes:
        files["model.onnx"] = trained.onnx_bytes
    files.update({plot_path(name): data for name, data in (trained.plots or {}).items()})
    return files


def _plots(files: dict[str, bytes]) -> list[str]:
    """The staged plot files (``plots/<name>.png``), sorted."""
    return sorted(name for name in files if name.startswith("plots/") and name.endswith(".png"))
