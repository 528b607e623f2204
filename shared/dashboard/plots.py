"""The plots saved with model versions: the tree of what exists, and one plot's bytes.

Layout (relative to a version's folder): ``plots/{plot}.png`` for the version, and
``partitions/{key}/plots/{plot}.png`` per partition of a partitioned version (listed in
its manifest with their hashes, like the partition models). A plot's URL is
``/models/{name}/versions/{v}/plots/{plot}.png`` or ``.../plots/{key}/{plot}.png``; only
files the version records are served, read and checked against their SHA-256. A
partition trained since plots became deferred stores ``partitions/{key}/plots.json``
(the numbers each plot shows, hashed in the manifest like every file) instead of PNGs:
its plots are drawn from those numbers at the first view, and kept in memory.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.errors import NotFound, ValidationFailed
from shared.names import NAME_PATTERN, check_name
from shared.registry.files import CONTAINER, find_file
from shared.registry.loader import ModelLoader
from shared.registry.schemas import StoredFile, VersionInfo
from shared.registry.store import ModelRegistry
from shared.storage_deadline import map_in_threads

# What follows ".../plots/" in a plot URL: "<plot>.png" or "<partition key>/<plot>.png".
_PLOT_URL_PATH = re.compile(r"^(?:(?P<key>[0-9a-f]{16})/)?(?P<plot>[a-z0-9_]{1,64})\.png$")
MAX_MODELS = 200
DRAWN_CACHE = 64  # plots drawn from their numbers, kept per instance (about 50 kB each)


class PlotsQuery(BaseModel):
    model: str | None = Field(default=None, pattern=NAME_PATTERN, description="One model only.")
    versions: int = Field(default=10, ge=1, le=50, description="Newest versions per model.")


class PlotLink(BaseModel):
    name: str
    url: str


class PartitionPlots(BaseModel):
    partition: str
    key: str
    n_rows: int | None = None
    metrics: dict[str, float] = {}
    carried_over_from: int | None = None
    plots: list[PlotLink]


class VersionPlots(BaseModel):
    version: int
    created_at: datetime
    aliases: list[str]
    plots: list[PlotLink]
    partitions: list[PartitionPlots] = []


class ModelPlots(BaseModel):
    name: str
    versions: list[VersionPlots]


class PlotTree(BaseModel):
    models: list[ModelPlots]


def _plot_name(relative: str) -> str:
    return relative.rsplit("/", 1)[-1].removesuffix(".png")


def _url(name: str, version: int, plot: str, key: str | None = None) -> str:
    middle = f"{key}/" if key else ""
    return f"/models/{name}/versions/{version}/plots/{middle}{plot}.png"


class PlotCatalog:
    def __init__(self, registry: ModelRegistry, loader: ModelLoader) -> None:
        self.registry = registry
        self.loader = loader
        self._png: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._lock = threading.Lock()

    # --- the tree -------------------------------------------------------------------------
    def tree(self, query: PlotsQuery) -> PlotTree:
        if query.model:
            names = [query.model]
            self.registry.get_model(query.model)  # 404 for an unknown model
        else:
            summaries, _ = self.registry.list_models(MAX_MODELS, None)
            names = sorted(s.name for s in summaries)
        # The page's version rows and aliases in one range query each (not 2 calls per
        # version); partitioned versions then read their manifests, overlapped.
        newest = self.registry.newest_versions(names, query.versions)
        wanted = [info for name in names for info in newest.get(name, [])]
        versions = map_in_threads(self._version, wanted)
        by_model: dict[str, list[VersionPlots]] = {n: [] for n in names}
        for info, plots in zip(wanted, versions, strict=True):
            if plots is not None:
                by_model[info.name].append(plots)
        return PlotTree(models=[ModelPlots(name=n, versions=by_model[n]) for n in names])

    def _version(self, info: VersionInfo) -> VersionPlots | None:
        name, version = info.name, info.version
        prefix = f"{CONTAINER}/{name}/{version}/plots/"
        plots = [
            PlotLink(name=_plot_name(f.path), url=_url(name, version, _plot_name(f.path)))
            for f in sorted(info.files, key=lambda f: f.path)
            if f.path.startswith(prefix) and f.path.endswith(".png")
        ]
        partitions = []
        if info.format == "partitioned":
            try:
                manifest = self._manifest(info)
            except NotFound:
                return None  # deleted meanwhile
            for value, entry in sorted(manifest.get("partitions", {}).items()):
                key = entry["key"]
                partitions.append(
                    PartitionPlots(
                        partition=value,
                        key=key,
                        n_rows=entry.get("n_rows"),
                        metrics=entry.get("metrics") or {},
                        carried_over_from=entry.get("carried_over_from"),
                        plots=[
                            PlotLink(
                                name=_plot_name(p), url=_url(name, version, _plot_name(p), key)
                            )
                            for p in entry.get("plots") or []
                        ],
                    )
                )
        return VersionPlots(
            version=version,
            created_at=info.created_at,
            aliases=info.aliases,
            plots=plots,
            partitions=partitions,
        )

    def _manifest(self, info: VersionInfo) -> dict[str, Any]:
        # The loader caches the manifest by its hash and checks it against the row.
        return self.loader.load(info.name, version=info.version).model

    # --- one plot -------------------------------------------------------------------------
    def read(self, name: str, version: int, url_path: str) -> bytes:
        """The PNG at ``.../plots/{url_path}``: 422 for a malformed path, 404 if absent."""
        check_name(name, "model")
        match = _PLOT_URL_PATH.fullmatch(url_path or "")
        if match is None:
            raise ValidationFailed(
                "A plot path is '<plot>.png' or '<partition key>/<plot>.png' "
                "(lower-case letters, digits and _; the key is 16 hex digits).",
                [{"loc": ["path", "path"], "msg": "invalid plot path", "type": "plot_path"}],
            )
        key, plot = match.group("key"), match.group("plot")
        info = self.registry.get_version(name, version)
        relative = f"partitions/{key}/plots/{plot}.png" if key else f"plots/{plot}.png"
        manifest = self._manifest(info) if key and info.format == "partitioned" else None
        stored = find_file(info, relative, manifest)
        if stored is not None:
            return self.loader.read_verified(info, stored)
        entry = next(
            (e for e in (manifest or {}).get("partitions", {}).values() if e.get("key") == key),
            None,
        )
        if entry and entry.get("plot_data") and relative in (entry.get("plots") or []):
            data = find_file(info, entry["plot_data"], manifest)
            if data is not None:
                return self._drawn(info, data, plot)
        raise NotFound("This version has no such plot.", code="PLOT_NOT_FOUND")

    def _drawn(self, info: VersionInfo, data: StoredFile, plot: str) -> bytes:
        """A partition's plot drawn from its stored numbers (hash-checked), kept for the
        next viewer: the same numbers always draw the same PNG."""
        cache_key = (data.sha256, plot)
        with self._lock:
            if cache_key in self._png:
                self._png.move_to_end(cache_key)
                return self._png[cache_key]
        numbers = json.loads(self.loader.read_verified(info, data)).get(plot)
        if not isinstance(numbers, dict):
            raise NotFound("This version has no such plot.", code="PLOT_NOT_FOUND")
        from shared.ml.plots import draw_plot  # lazy: matplotlib

        png = draw_plot(plot, numbers)
        with self._lock:
            self._png[cache_key] = png
            while len(self._png) > DRAWN_CACHE:
                self._png.popitem(last=False)
        return png
