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
from shared.registry.review import LOWER_IS_BETTER
from shared.registry.schemas import Lineage, Promotion, VersionMetadata
from shared.registry.store import ModelRegistry
from shared.training.jobs import Unit
from shared.training.schemas import TrainingSpec
from shared.training.staging import staged_plots


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
            for plot in staged_plots(files):
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
            entry["plots"] = [f"partitions/{key}/{plot}" for plot in staged_plots(files)]
            for plot, relative in zip(staged_plots(files), entry["plots"], strict=True):
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
