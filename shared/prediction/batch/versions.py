"""A registered version as batch scoring sees it: each partition a Servable with a batch session."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from shared.errors import ValidationFailed

if TYPE_CHECKING:
    from shared.prediction.engine import Predictor
    from shared.prediction.runtime import Servable
    from shared.registry.loader import LoadedModel, ModelLoader


# --- models --------------------------------------------------------------------------------


class RegistryVersion:
    """A registered version as the engine's ``ServableVersion``; sub-models load on first use.

    Built once per loaded version and kept by the model loader (``ModelLoader.derived``),
    so the chunks of a job share its batch sessions and leave with the model.
    """

    def __init__(self, predictor: Predictor, loader: ModelLoader, parent: LoadedModel) -> None:
        self.predictor = predictor
        self.loader = loader
        self.name = name = parent.name
        self.version = version = parent.version
        self._lock = threading.Lock()
        self._subs: dict[str, Servable | None] = {}
        self.partitions: set[str] | None = None
        if parent.format == "partitioned":
            manifest = parent.model
            self.partition_by: str | None = manifest["partition_by"]
            self.partitions = set(manifest["partitions"])
            features = manifest.get("features") or [
                f.model_dump() for f in parent.info.features or []
            ]
            if not features:
                raise ValidationFailed(f"{name} version {version} has no feature schema.")
            self.features: list[dict[str, str]] = features
            self.task: str | None = manifest.get("task") or parent.info.task
            self._single: Servable | None = None
        else:
            self.partition_by = None
            servable, _ = predictor.servable(name, version)
            self._single = self._for_batch(servable)
            self.features = servable.features
            self.task = servable.task

    def _for_batch(self, servable: Servable) -> Servable:
        """The online servable, with a batch session (blocked trees) when it runs ONNX."""
        from shared.prediction.batch.onnx_blocks import batch_servable

        loaded = servable.loaded
        if loaded is None or servable.session is None:
            return servable
        return batch_servable(
            self.loader.read_verified(loaded.info, loaded.stored),
            servable.features,
            servable.task,
            servable.classes,
            session=servable.session,
            threads=self.loader.intra_op_threads,
            label=f"{self.name}:{self.version}",
        )

    def servable(self, partition: str | None) -> Servable | None:
        if self.partitions is None:
            return self._single
        if partition not in self.partitions:
            return None
        with self._lock:
            if partition in self._subs:
                return self._subs[partition]
        servable, _ = self.predictor.servable(self.name, self.version, partition=partition)
        sub = self._for_batch(servable)
        with self._lock:
            self._subs[partition] = sub
        return sub

    def classes(self) -> list[Any] | None:
        """Every class any (sub-)model predicts, for ``proba_<class>`` columns."""
        if self.partitions is None:
            return self._single.classes if self._single else None
        seen: list[Any] = []
        for partition in sorted(self.partitions):
            sub = self.servable(partition)
            for c in (sub.classes if sub else None) or []:
                if c not in seen:
                    seen.append(c)
        return seen or None
