"""The fan-in's last step: a spec's trained units registered as one version, then promoted.

:class:`Registration` is the registering half of :class:`~shared.training.orchestrator.Trainer`
(a mixin over its registry and staging reads): one version per spec, a partitioned
version's manifest with a previous version's sub-models carried over for failed
partitions, and the promotion rule (``if_better`` against the champion, ``always``,
``manual``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from shared.errors import NotFound
from shared.registry.files import NewFile, PlacedFile, find_file
from shared.registry.schemas import Lineage, VersionMetadata
from shared.registry.store import LOWER_IS_BETTER, ModelRegistry
from shared.training.jobs import Unit
from shared.training.schemas import TrainingSpec


class Registration:
    """Registering a spec's units as a version, for :class:`Trainer`."""

    registry: ModelRegistry
    datasets: Any  # the DatasetStore (lineage: the dataset's sha256)

    def _read(self, path: str) -> bytes:
        raise NotImplementedError

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
            info = self._register_partitioned(job_id, spec, ok, units, meta)
        promoted = self._promote(spec, info.version, meta.metrics, first.get("primary_metric"))
        return {"model": spec.name, "version": info.version, "promoted": promoted}

    def _register_partitioned(
        self,
        job_id: str,
        spec: TrainingSpec,
        ok: list[Unit],
        units: list[Unit],
        meta: VersionMetadata,
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

    def _promote(
        self, spec: TrainingSpec, version: int, metrics: dict[str, float], primary: str | None
    ) -> bool:
        if spec.promote == "manual":
            return False
        promote = spec.promote == "always" or self._beats_champion(spec, metrics, primary)
        if promote:
            self.registry.set_alias(spec.name, "champion", version, by="training")
        return promote

    def _beats_champion(
        self, spec: TrainingSpec, metrics: dict[str, float], primary: str | None
    ) -> bool:
        try:
            champion = self.registry.get_version(
                spec.name, self.registry.get_alias(spec.name, "champion").version
            )
        except NotFound:
            return True
        if primary is None or primary not in metrics:
            return True  # anomaly models have no holdout quality metric to compare
        if (
            champion.params.get("seed") != spec.seed
            or champion.params.get("holdout_fraction") != spec.holdout_fraction
        ):
            return True  # a different holdout definition: the champion's score is not comparable
        theirs = champion.metrics.get(primary)
        if theirs is None:
            return True
        if primary.lower() in LOWER_IS_BETTER:
            return metrics[primary] < theirs
        return metrics[primary] > theirs
