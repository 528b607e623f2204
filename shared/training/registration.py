"""The fan-in's last step: a spec's trained units registered as one version, then promoted.

:class:`Registration` is the registering half of :class:`~shared.training.orchestrator.Trainer`
(a mixin over its registry and staging reads): one version per spec, a partitioned
version's manifest with a previous version's sub-models carried over for failed
partitions, and the promotion rule (``if_better`` against the champion, ``always``,
``manual``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from shared.errors import NotFound
from shared.registry.files import NewFile, PlacedFile, find_file, recorded_file
from shared.registry.review import LOWER_IS_BETTER
from shared.registry.schemas import Lineage, Promotion, StoredFile, VersionMetadata
from shared.registry.store import ModelRegistry
from shared.storage_deadline import map_in_threads
from shared.training.jobs import Unit
from shared.training.partition_files import read_unit_record, unit_pack, version_folder
from shared.training.schemas import TrainingSpec
from shared.training.staging import staged_plots


class Registration:
    """Registering a spec's units as a version, for :class:`Trainer`."""

    registry: ModelRegistry
    datasets: Any  # the DatasetStore (lineage: the dataset's sha256)

    def _read(self, path: str) -> bytes:
        raise NotImplementedError

    def _reserved(self, job_id: str) -> dict[str, int]:
        raise NotImplementedError

    def _staged_files(self, unit: Unit) -> dict[str, dict[str, bytes]]:
        raise NotImplementedError

    def _register(
        self, job_id: str, spec: TrainingSpec, ok: list[Unit], units: list[Unit]
    ) -> dict[str, Any]:
        if spec.partition_by:
            info = self._register_partitioned(job_id, spec, ok, units)
        else:
            info = self._register_whole(job_id, spec, ok[0])
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

    def _version_meta(self, job_id: str, spec: TrainingSpec, first: dict[str, Any]) -> Any:
        dataset = self.datasets.get(spec.dataset)
        return VersionMetadata(
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

    def _register_whole(self, job_id: str, spec: TrainingSpec, unit: Unit) -> Any:
        files = self._staged_files(unit).get("_all")
        if files is None:
            raise ValueError(f"job {job_id}: no staged files for spec {spec.name}")
        first = json.loads(files["training.json"])
        meta = self._version_meta(job_id, spec, first)
        meta.metrics = unit.metrics
        meta.promotion = self._promotion(spec, meta.metrics, first.get("primary_metric"))
        placed = []
        if "model.onnx" in files:
            placed.append(PlacedFile("serving.onnx", files["model.onnx"], "serving", "onnx"))
        for plot in staged_plots(files):
            placed.append(PlacedFile(plot, files[plot], "artifact", "png"))
        return self.registry.register(
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

    def _register_partitioned(
        self, job_id: str, spec: TrainingSpec, ok: list[Unit], units: list[Unit]
    ) -> Any:
        """One version with every partition trained. The units wrote their files into the
        version reserved at planning and staged a record of them; the manifest, with every
        file's hash, is built from those records (plus carried-over partitions) and
        written last, with the version's row."""
        version = self._reserved(job_id)[spec.name]
        records = map_in_threads(
            lambda name: read_unit_record(self._read(name), spec.name, version),
            [u.outputs["record"] for u in ok if u.outputs.get("record")],
        )
        first = next((training for training, _, _ in records if training), None)
        if first is None:
            raise ValueError(f"job {job_id}: no staged record for spec {spec.name}")
        meta = self._version_meta(job_id, spec, first)
        entries = [p for u in units for p in u.partitions]
        succeeded = {p["key"]: p for p in entries if p.get("status") == "succeeded"}
        failed = [p for p in entries if p.get("status") == "failed"]
        partitions: dict[str, Any] = {}
        registered: list[dict[str, Any]] = []
        stored: dict[str, StoredFile] = {}
        for _, written, files in records:
            for key, entry in written.items():
                part = succeeded.get(key)
                if part is None:
                    continue
                metrics = part.get("metrics") or {}
                partitions[str(part["partition"])] = {
                    **entry,
                    "metrics": metrics,
                    "n_rows": part.get("n_rows"),
                }
                registered.append(part)
            stored.update(files)
        # A unit that died part-way may have written some of a failed partition's files:
        # they are removed (a carried-over sub-model then takes their place).
        # So is the pack of a unit that failed whole (an earlier delivery may have written it).
        ok_ids = {u.unit_id for u in ok}
        map_in_threads(
            lambda under: self.registry.discard_reserved(spec.name, version, under=under),
            [f"partitions/{p['key']}/" for p in failed]
            + [
                f"{unit_pack(u.unit_id)}-"
                for u in units
                if u.unit_id not in ok_ids and u.partitions
            ],
        )

        def manifest(stored: dict[str, StoredFile]) -> NewFile:
            # Runs once every partition file is stored: the version's numbers and its
            # promotion are decided over the partitions that were actually registered.
            self._partitioned_metrics(
                spec,
                meta,
                first.get("primary_metric"),
                registered,
                entries,
                [p["partition"] for p in failed],
            )
            body = {
                "partition_by": spec.partition_by,
                "task": meta.task,
                "features": [f.model_dump() for f in meta.features or []],
                "partitions": partitions,
                # Hashes of the partition files: the registry row records only the manifest's.
                "files": {
                    relative: recorded_file(f, version_folder(spec.name, version))
                    for relative, f in sorted(stored.items())
                },
            }
            return NewFile("model.json", json.dumps(body, sort_keys=True).encode())

        return self.registry.register(
            spec.name,
            "partitioned",
            manifest,
            [],
            meta,
            created_by=f"training:{job_id}",
            placed=self._carry_over(spec, [p["partition"] for p in failed], partitions),
            reserved=version,
            stored=stored,
        )

    def _partitioned_metrics(
        self,
        spec: TrainingSpec,
        meta: VersionMetadata,
        primary: str | None,
        ok: list[dict[str, Any]],
        entries: list[dict[str, Any]],
        failed: list[Any],
    ) -> None:
        """A partitioned version's metrics (row-weighted means, counts) and its promotion."""
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

    def _carry_over(
        self, spec: TrainingSpec, failed: list[Any], partitions: dict[str, Any]
    ) -> Iterator[PlacedFile]:
        """A failed partition keeps serving the sub-model of the previous version (its
        files copied one by one into the new version; its entry added to ``partitions``)."""
        if not failed:
            return
        try:
            previous = self.registry.get_version(spec.name, self.registry.resolve(spec.name))
        except NotFound:
            return
        if previous.format != "partitioned":
            return
        manifest_file = next(f for f in previous.files if f.role == "model")
        previous_manifest = json.loads(self.registry.read_file(manifest_file))
        old = previous_manifest["partitions"]
        for partition in failed:
            entry = old.get(str(partition))
            if entry is None:
                continue
            entry = {
                **entry,
                "carried_over_from": entry.get("carried_over_from") or previous.version,
            }
            kept = [entry.get(field) for field in ("skops", "onnx", "profile", "plot_data")]
            for relative in [r for r in kept if r] + list(entry.get("plots") or []):
                stored = find_file(previous, relative, previous_manifest)
                drawn_when_viewed = entry.get("plot_data") and relative in entry["plots"]
                if stored is None and drawn_when_viewed:
                    continue  # a plot drawn from plot_data: never stored as a file
                if stored is None:
                    raise ValueError(f"version {previous.version} lacks {relative}")
                yield PlacedFile(
                    relative, self.registry.read_file(stored), "partition", stored.format
                )
            partitions[str(partition)] = entry

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
