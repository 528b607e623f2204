"""The one model loader every prediction uses: resolve, download once, verify, load, cache.

Cached per process by (name, version, sha256) in an LRU bounded by the bytes of the
serialized files; aliases resolve through a short TTL so a promotion is seen within
seconds without a storage read per prediction. What callers build from a loaded model
(the online servable, the batch scorer's sessions) is cached here too, with
:meth:`ModelLoader.derived`, and leaves the cache with the model it came from.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from shared import metrics
from shared.errors import AppError, NotFound
from shared.registry.cache import LoadOnce
from shared.registry.files import find_file
from shared.registry.formats import load_model
from shared.registry.schemas import StoredFile, VersionInfo
from shared.registry.store import ModelRegistry

T = TypeVar("T")
ModelKey = tuple[str, int, str]  # (name, version, sha256 of the file loaded)
# Derived objects are few per model (a servable, a batch version): bounded by count.
MAX_DERIVED = 256


class ModelIntegrityFailed(AppError):
    status, code, title = 409, "MODEL_INTEGRITY_FAILED", "Model integrity check failed"


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: int
    sha256: str
    format: str
    model: Any
    info: VersionInfo
    size_bytes: int
    stored: StoredFile  # the file it was loaded from (a sub-model's, for partitions)


def serving_file(info: VersionInfo) -> StoredFile:
    """The verified ONNX export when the version has one, else the model file itself."""
    return next((f for f in info.files if f.role == "serving"), None) or next(
        f for f in info.files if f.role == "model"
    )


class ModelLoader:
    def __init__(
        self,
        registry: ModelRegistry,
        max_cache_bytes: int,
        alias_ttl_seconds: float = 5.0,
        intra_op_threads: int = 1,
    ) -> None:
        self.registry = registry
        self.max_cache_bytes = max_cache_bytes
        self.alias_ttl = alias_ttl_seconds
        self.intra_op_threads = intra_op_threads
        self._derived: LoadOnce[tuple[ModelKey, str], Any] = LoadOnce(max_entries=MAX_DERIVED)
        self._models: LoadOnce[ModelKey, LoadedModel] = LoadOnce(
            max_weight=max_cache_bytes,
            weigh=lambda m: m.size_bytes,
            on_evict=lambda key, _: self._derived.discard(lambda k: k[0] == key),
            observe=metrics.count_model_cache,
        )
        self._resolved: dict[tuple[str, int | None, str | None], tuple[float, int]] = {}
        self._infos: dict[tuple[str, int], tuple[float, VersionInfo]] = {}

    def resolve(self, name: str, version: int | None = None, alias: str | None = None) -> int:
        if version is not None:
            return version
        key = (name, version, alias)
        now = time.monotonic()
        hit = self._resolved.get(key)
        if hit and now - hit[0] < self.alias_ttl:
            return hit[1]
        resolved = self.registry.resolve(name, version=version, alias=alias)
        self._resolved[key] = (now, resolved)
        return resolved

    def info(self, name: str, version: int) -> VersionInfo:
        now = time.monotonic()
        hit = self._infos.get((name, version))
        if hit and now - hit[0] < self.alias_ttl:
            return hit[1]
        info = self.registry.get_version(name, version)
        self._infos[(name, version)] = (now, info)
        return info

    def load(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel:
        resolved = self.resolve(name, version, alias)
        info = self.info(name, resolved)
        stored = serving_file(info)
        # One download per model, however many requests arrive at once.
        return self._models.get_or_build(
            (name, resolved, stored.sha256), lambda: self._load(info, stored)
        )

    def derived(self, loaded: LoadedModel, purpose: str, build: Callable[[], T]) -> T:
        """What ``build`` makes from ``loaded``, built once and kept while the model is."""
        key = ((loaded.name, loaded.version, loaded.sha256), purpose)
        return self._derived.get_or_build(key, build)

    def loaded_models(self) -> list[dict[str, Any]]:
        """What this instance holds in memory, least recently used first (GET /status)."""
        return [
            {
                "name": m.name,
                "version": m.version,
                "format": m.stored.format or m.format,
                "size_bytes": m.size_bytes,
            }
            for m in self._models.values()
        ]

    def read_verified(self, info: VersionInfo, stored: StoredFile) -> bytes:
        """The file's bytes, refused with 409 unless the version's row carries a valid
        signature (or none, where unsigned versions are allowed) and the bytes match the
        recorded size and hash."""
        self.registry.check_signature(info)
        data = self.registry.read_file(stored)
        if len(data) != stored.size_bytes or hashlib.sha256(data).hexdigest() != stored.sha256:
            raise ModelIntegrityFailed(
                f"The stored file of {info.name} version {info.version} does not match its"
                " recorded SHA-256; it will not be used.",
                extra={"path": stored.path},
            )
        return data

    def forget_aliases(self, name: str) -> None:
        """Drop this instance's alias resolutions of a model after a change made here."""
        for key in [k for k in self._resolved if k[0] == name]:
            self._resolved.pop(key, None)
        for key in [k for k in self._infos if k[0] == name]:
            self._infos.pop(key, None)

    def load_partition(self, parent: LoadedModel, partition: str) -> LoadedModel:
        """The sub-model of one partition of a partitioned version (cached like any model)."""
        entry = parent.model["partitions"].get(partition)
        if entry is None:
            raise NotFound(
                f"{parent.name} version {parent.version} has no partition '{partition[:100]}'.",
                code="PARTITION_NOT_FOUND",
            )
        relative = entry.get("onnx") or entry["skops"]
        stored = find_file(parent.info, relative, parent.model)
        if stored is None:
            raise ModelIntegrityFailed(f"The partition file {relative} is not recorded.")
        return self.load_file(parent.info, stored)

    def load_file(self, info: VersionInfo, stored: StoredFile) -> LoadedModel:
        """One recorded file of a version, verified and loaded (cached like any model)."""
        return self._models.get_or_build(
            (info.name, info.version, stored.sha256), lambda: self._load(info, stored)
        )

    def _load(self, info: VersionInfo, stored: StoredFile) -> LoadedModel:
        data = self.read_verified(info, stored)
        fmt = stored.format or info.format
        model = (
            json.loads(data)
            if fmt == "partitioned"
            else load_model(fmt, data, self.intra_op_threads)
        )
        return LoadedModel(
            name=info.name,
            version=info.version,
            sha256=stored.sha256,
            format=fmt,
            model=model,
            info=info,
            size_bytes=stored.size_bytes,
            stored=stored,
        )

    def clear(self) -> None:
        self._models.clear()
        self._derived.clear()
        self._resolved.clear()
        self._infos.clear()
