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
import io
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.queue import QueueClient

from shared.errors import NotFound, ValidationFailed
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
from shared.training.jobs import TERMINAL, UNIT_TERMINAL, Job, JobStore, Unit
from shared.training.recovery import TrainingRecovery
from shared.training.specs import SpecStore, TrainingSpec

STAGING_CONTAINER = "training-staging"
CHUNK_ROWS = 100_000
log = get_logger("training")


def partition_key(value: Any) -> str:
    return hashlib.sha256(str(value).encode()).hexdigest()[:16]


def _unit_id(spec: str, index: int) -> str:
    return f"{spec}~{index:06d}"


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
    ) -> None:
        self.specs = specs
        self.jobs = jobs
        self.datasets = datasets
        self.registry = registry
        self.idempotency = idempotency
        self.queue = queue
        self.staging = staging
        self.max_dequeue_count = max_dequeue_count

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
            raise ValidationFailed("There is no enabled training spec to run.")
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
        raw = json.loads(self.jobs.raw(job_id)["snapshot"])
        return {name: TrainingSpec.model_validate(body) for name, body in raw.items()}

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
                self.jobs.set_unit(unit, etag_guard=False, status="failed", error=reason)
            self._count(unit)
        else:
            stage = message.get("kind", "a step")
            self.jobs.update(
                job_id,
                status="failed",
                finished_at=iso(utcnow()),
                error=f"{stage} failed: {reason}",
            )

    # --- plan ------------------------------------------------------------------------------
    def plan(self, job_id: str) -> None:
        """Record the units, then dispatch them; a redelivery finishes either step."""
        raw = self.jobs.raw(job_id)
        if raw["status"] in TERMINAL or raw.get("dispatched"):
            return  # planned and dispatched already (a redelivered message)
        if raw["status"] == "queued":
            self._record_units(job_id)
        # Every unit still queued gets its message (again, if an earlier delivery died
        # part-way: a unit that already runs ignores the duplicate); none left: fan in.
        queued = [u for u in self.jobs.list_units(job_id) if u.status == "queued"]
        messages = [{"kind": "unit", "job_id": job_id, "unit_id": u.unit_id} for u in queued]
        self.dispatch(
            messages or [{"kind": "finalize", "job_id": job_id}],
            lambda: self.jobs.update(job_id, dispatched=True),
        )

    def _record_units(self, job_id: str) -> None:
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
        self.jobs.update(
            job_id,
            status="running",
            started_at=iso(utcnow()),
            total_units=len(units),
            done_units=finished,
        )

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
        counts: dict[str, int] = {}
        values: dict[str, Any] = {}
        uploads = []
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="stage") as pool:
            for index, frame in enumerate(
                self.datasets.iter_frames(spec.dataset, chunksize=CHUNK_ROWS)
            ):
                if spec.partition_by not in frame.columns:
                    raise ValidationFailed(f"Column '{spec.partition_by}' is not in the dataset.")
                for value, part in frame.groupby(spec.partition_by, sort=False, dropna=True):
                    key = partition_key(value)
                    counts[key] = counts.get(key, 0) + len(part)
                    values[key] = value
                    buffer = io.BytesIO()
                    part.to_parquet(buffer, index=False)
                    uploads.append(
                        pool.submit(
                            self.staging.upload_blob,
                            f"{job_id}/{spec.name}/{key}/in/{index:06d}.parquet",
                            buffer.getvalue(),
                            overwrite=True,
                        )
                    )
            for future in uploads:
                future.result()
        ordered = sorted(values, key=lambda k: str(values[k]))
        units = []
        for index, key in enumerate(ordered):
            small = counts[key] < spec.min_rows
            units.append(
                {
                    "unit_id": _unit_id(spec.name, index),
                    "spec": spec.name,
                    "partition": _plain(values[key]),
                    "partition_key": key,
                    "status": "skipped" if small else "queued",
                    "n_rows": counts[key],
                    "error": f"{counts[key]} rows < min_rows {spec.min_rows}" if small else None,
                }
            )
        return units

    # --- one unit ----------------------------------------------------------------------------
    def run_unit(
        self, job_id: str, unit_id: str, dequeue_count: int = 1, message_id: str | None = None
    ) -> None:
        from shared.ml.train import TrainingError, train_model  # lazy: the ML stack

        unit = self.jobs.unit(job_id, unit_id)
        if unit.status in UNIT_TERMINAL:
            self._count(unit)  # the previous delivery may have died before counting
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
        spec = self._snapshot(job_id)[unit.spec]
        try:
            frame = self._unit_frame(job_id, spec, unit)
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
            )
            outputs = self._stage_outputs(job_id, spec, unit, trained)
            self.jobs.set_unit(
                unit,
                status="succeeded",
                metrics=trained.metrics,
                n_rows=len(frame),
                outputs=outputs,
                finished_at=iso(utcnow()),
            )
        except (TrainingError, ValueError, KeyError) as exc:
            # Bad data or a bad spec fails the same way on every retry: fail it now.
            self.jobs.set_unit(
                unit, status="failed", error=str(exc)[:1000], finished_at=iso(utcnow())
            )
        except Exception as exc:
            if dequeue_count < self.max_dequeue_count:
                raise  # transient (storage, memory): the host retries the message
            self.jobs.set_unit(
                unit,
                status="failed",
                error=f"{type(exc).__name__}: {exc}"[:1000],
                finished_at=iso(utcnow()),
            )
        self._count(self.jobs.unit(job_id, unit_id))

    def _count(self, unit: Unit) -> None:
        job_id = unit.job_id
        self.fan_in(
            bool(unit.outputs.get("counted")),
            lambda: self.jobs.add_done(job_id),
            lambda: self.jobs.set_unit(
                unit, etag_guard=False, outputs={**unit.outputs, "counted": True}
            ),
            lambda: self.jobs.counts(job_id),
            lambda: self._send({"kind": "finalize", "job_id": job_id}),
        )

    def _unit_frame(self, job_id: str, spec: TrainingSpec, unit: Unit) -> Any:
        import pandas as pd

        if unit.partition_key:
            prefix = f"{job_id}/{spec.name}/{unit.partition_key}/in/"
            parts = [
                pd.read_parquet(io.BytesIO(self.staging.download_blob(b.name).readall()))
                for b in self.staging.list_blobs(name_starts_with=prefix)
            ]
        else:
            parts = list(self.datasets.iter_frames(spec.dataset, chunksize=CHUNK_ROWS))
        if not parts:
            raise ValueError("no rows to train on")
        return pd.concat(parts, ignore_index=True)

    def _stage_outputs(
        self, job_id: str, spec: TrainingSpec, unit: Unit, trained: Any
    ) -> dict[str, Any]:
        base = f"{job_id}/{spec.name}/{unit.partition_key or '_all'}/out/"
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
        for filename, data in files.items():
            self.staging.upload_blob(base + filename, data, overwrite=True)
        return {"prefix": base, "onnx": trained.onnx_bytes is not None}

    # --- fan-in -------------------------------------------------------------------------------
    def finalize(self, job_id: str) -> None:
        raw = self.jobs.raw(job_id)
        if raw["status"] not in ("running", "queued"):
            return
        units = self.jobs.list_units(job_id)
        if any(u.status not in UNIT_TERMINAL for u in units):
            return  # a unit was double counted; the last real one will finalize
        done_specs = json.loads(raw.get("spec_results") or "{}")
        for name, spec in self._snapshot(job_id).items():
            if name in done_specs:
                continue
            mine = [u for u in units if u.spec == name]
            outcome = self._finalize_spec(job_id, spec, mine)
            self.jobs.record_spec_result(job_id, name, outcome)
        failed = sum(1 for u in units if u.status == "failed")
        status = (
            "succeeded"
            if failed == 0
            else "failed"
            if failed == len(units)
            else ("partially_failed")
        )
        self.jobs.update(job_id, status=status, finished_at=iso(utcnow()))
        self._delete_staging(job_id)

    def _delete_staging(self, job_id: str) -> None:
        def delete(name: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.staging.delete_blob(name)

        names = [b.name for b in self.staging.list_blobs(name_starts_with=f"{job_id}/")]
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="cleanup") as pool:
            list(pool.map(delete, names))

    def _read(self, path: str) -> bytes:
        return self.staging.download_blob(path).readall()

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
        first = json.loads(self._read(ok[0].outputs["prefix"] + "training.json"))
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
            unit = ok[0]
            prefix = unit.outputs["prefix"]
            meta.metrics = unit.metrics
            meta.promotion = self._promotion(spec, meta.metrics, first.get("primary_metric"))
            placed = []
            if unit.outputs.get("onnx"):
                placed.append(
                    PlacedFile("serving.onnx", self._read(prefix + "model.onnx"), "serving", "onnx")
                )
            info = self.registry.register(
                spec.name,
                "skops",
                NewFile("model.skops", self._read(prefix + "model.skops")),
                [
                    NewFile("profile.json", self._read(prefix + "profile.json")),
                    NewFile("training.json", self._read(prefix + "training.json")),
                ],
                meta,
                created_by=f"training:{job_id}",
                placed=placed,
            )
        else:
            info = self._register_partitioned(
                job_id, spec, ok, units, meta, first.get("primary_metric")
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
        ok: list[Unit],
        units: list[Unit],
        meta: VersionMetadata,
        primary: str | None,
    ) -> Any:
        partitions: dict[str, Any] = {}
        placed: list[PlacedFile] = []
        for unit in ok:
            key, prefix = unit.partition_key, unit.outputs["prefix"]
            entry = {
                "key": key,
                "metrics": unit.metrics,
                "n_rows": unit.n_rows,
                "skops": f"partitions/{key}/model.skops",
                "onnx": None,
                "profile": f"partitions/{key}/profile.json",
                "carried_over_from": None,
            }
            placed.append(
                PlacedFile(entry["skops"], self._read(prefix + "model.skops"), "partition", "skops")
            )
            placed.append(
                PlacedFile(entry["profile"], self._read(prefix + "profile.json"), "partition")
            )
            if unit.outputs.get("onnx"):
                entry["onnx"] = f"partitions/{key}/model.onnx"
                placed.append(
                    PlacedFile(
                        entry["onnx"], self._read(prefix + "model.onnx"), "partition", "onnx"
                    )
                )
            partitions[str(unit.partition)] = entry
        carried = self._carry_over(spec, [u for u in units if u.status == "failed"], placed)
        partitions.update(carried)
        total_rows = sum(u.n_rows or 0 for u in ok) or 1
        names = sorted({m for u in ok for m in u.metrics})
        meta.metrics = {
            m: sum(u.metrics[m] * (u.n_rows or 0) for u in ok if m in u.metrics) / total_rows
            for m in names
        }
        meta.metrics["partitions_trained"] = float(len(ok))
        meta.metrics["partitions_failed"] = float(sum(u.status == "failed" for u in units))
        meta.metrics["partitions_skipped"] = float(sum(u.status == "skipped" for u in units))
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
        self, spec: TrainingSpec, failed: list[Unit], placed: list[PlacedFile]
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
        for unit in failed:
            entry = old.get(str(unit.partition))
            if entry is None:
                continue
            entry = {
                **entry,
                "carried_over_from": entry.get("carried_over_from") or previous.version,
            }
            for field in ("skops", "onnx", "profile"):
                if entry.get(field):
                    stored = find_file(previous, entry[field], previous_manifest)
                    if stored is None:
                        raise ValueError(f"version {previous.version} lacks {entry[field]}")
                    placed.append(
                        PlacedFile(
                            entry[field],
                            self.registry.read_file(stored),
                            "partition",
                            stored.format,
                        )
                    )
            carried[str(unit.partition)] = entry
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


def _plain(value: Any) -> Any:
    """Partition values as JSON-friendly Python scalars."""
    item: Callable[[], Any] | None = getattr(value, "item", None)
    return item() if item else value
