"""Training one unit: its rows read from staging, one model fitted per partition it
carries, the outputs staged as one bundle, and the job's counter moved.

:class:`UnitTraining` is the unit half of :class:`~shared.training.orchestrator.Trainer`
(a mixin over its job store, staging container and settings); the orchestrator plans,
dispatches, cancels and fans in.
"""

from __future__ import annotations

import json
import time
from typing import Any

from azure.storage.blob import ContainerClient

from shared import metrics
from shared.jobs.queue_job import claim
from shared.registry.store import ModelRegistry
from shared.tables import iso, utcnow
from shared.training.jobs import UNIT_TERMINAL, JobStore, Unit, reserved_versions_of
from shared.training.partition_files import (
    partition_layout,
    unit_pack,
    unit_record,
    version_folder,
)
from shared.training.plots import partition_plot_data, training_plots
from shared.training.schemas import TrainingSpec
from shared.training.staging import (
    CHUNK_ROWS,
    partition_key,
    read_unit_frame,
    trained_files,
    unit_id_prefix,
)
from shared.training.units import MAX_ERROR_CHARS, bundle

# A running unit looks at its job's status (cancelled?) at most this often.
CANCEL_CHECK_SECONDS = 1.0


class UnitTraining:
    """Running one unit message, for :class:`Trainer`."""

    jobs: JobStore
    registry: ModelRegistry
    staging: ContainerClient
    max_dequeue_count: int
    unit_rows: int
    threads: int

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
            version = reserved_versions_of(raw).get(spec.name) or self.jobs.reserved_version(
                job_id, spec.name, lambda: self.registry.reserve_version(spec.name)
            )
            done = self._train_partitions(job_id, spec, unit, dequeue_count, version)
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
        if spec.partition_by:
            trained.plot_data = partition_plot_data(trained, frame)
        else:
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
        outputs = self._stage_outputs(job_id, spec, unit, {"_all": trained_files(trained)})
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
        self, job_id: str, spec: TrainingSpec, unit: Unit, dequeue_count: int, version: int
    ) -> bool:
        """Train each partition of the unit; one that fails fails alone. Each partition's
        files go into the spec's reserved version while the next one trains. Between
        partitions the job's status is checked, so a cancel stops the unit there."""
        frame = read_unit_frame(self.staging, unit_id_prefix(job_id, spec.name, unit.unit_id))
        by_key = {
            partition_key(value): rows
            for value, rows in frame.groupby(spec.partition_by, sort=False, dropna=True)
        }
        del frame
        results: list[dict[str, Any]] = []
        entries: dict[str, dict[str, Any]] = {}
        training: dict[str, Any] | None = None
        checked = time.monotonic()
        pack = unit_pack(unit.unit_id)
        if dequeue_count > 1:  # an earlier delivery's segments: this one writes its own
            self.registry.discard_reserved(spec.name, version, under=f"{pack}-")
        with self.registry.version_uploads(spec.name, version, pack) as uploads:
            for entry in unit.partitions:
                if time.monotonic() - checked > CANCEL_CHECK_SECONDS:
                    checked = time.monotonic()
                    if self._cancelled(job_id):
                        uploads.finish()
                        return self._stop_cancelled(unit, spec, version)
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
                files = trained_files(trained)
                training = training or json.loads(files["training.json"])
                entries[entry["key"]], placed = partition_layout(entry["key"], files)
                for item in placed:
                    uploads.add(item)
                del files, placed
                results.append(
                    {
                        **entry,
                        "status": "succeeded",
                        "n_rows": len(rows),
                        "metrics": trained.metrics,
                        "onnx": trained.onnx_bytes is not None,
                    }
                )
            stored = uploads.finish()
        if self._cancelled(job_id):
            return self._stop_cancelled(unit, spec, version)
        outputs = {}
        if entries:
            record = unit_record(training, entries, stored, version_folder(spec.name, version))
            outputs = self._stage_outputs(job_id, spec, unit, record=record)
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

    def _stop_cancelled(
        self, unit: Unit, spec: TrainingSpec | None = None, version: int | None = None
    ) -> bool:
        """End a unit of a cancelled job without training (further): nothing staged, and
        the pack of partitions it wrote into the reserved version removed (the cancel
        removed the version's folder when it happened; the pack may have landed after)."""
        if spec is not None and version is not None:
            self.registry.discard_reserved(spec.name, version, under=f"{unit_pack(unit.unit_id)}-")
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
        self,
        job_id: str,
        spec: TrainingSpec,
        unit: Unit,
        files: dict[str, dict[str, bytes]] | None = None,
        record: bytes | None = None,
    ) -> dict[str, Any]:
        """One staged blob per unit: a whole model's files (``files``), or the record of
        the partitions a unit wrote into the reserved version (``record``)."""
        prefix = unit_id_prefix(job_id, spec.name, unit.unit_id)
        if record is not None:
            self.staging.upload_blob(prefix + "out.json", record, overwrite=True)
            return {"record": prefix + "out.json"}
        self.staging.upload_blob(prefix + "out.zip", bundle(files or {}), overwrite=True)
        return {"bundle": prefix + "out.zip"}

    # --- cancel ---------------------------------------------------------------------------------
