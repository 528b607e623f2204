"""Reading the registry's catalog, for :class:`~shared.registry.store.ModelRegistry` (a
mixin over its tables): pages of models, a model's versions, and the newest versions of a
page of models. A page of models is a range of names (the tables are ordered by name), so
what a page needs from each table is one range query, never one query per model.
"""

from __future__ import annotations

import json
from typing import Any

from azure.data.tables import TableClient

from shared.registry.rows import META, row_key
from shared.registry.schemas import (
    ModelDetail,
    ModelSummary,
    VersionBrief,
    VersionInfo,
    VersionQuery,
    VersionSummary,
)
from shared.tables import page, parse_iso


class RegistryBrowsing:
    """Listings of models and versions."""

    models: TableClient
    aliases: TableClient

    def _meta(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def alias_map(self, name: str) -> dict[str, int]:
        raise NotImplementedError

    def _info(self, row: dict[str, Any], aliases: list[str]) -> VersionInfo:
        raise NotImplementedError

    def _summary(self, meta: dict[str, Any], aliases: dict[str, int]) -> ModelSummary:
        return ModelSummary(
            name=meta["PartitionKey"],
            description=meta.get("description", ""),
            latest_version=int(meta.get("latest_version") or 0) or None,
            aliases=aliases,
            tags=json.loads(meta.get("tags") or "{}"),
            updated_at=parse_iso(meta["updated_at"]),
        )

    def list_models(
        self, limit: int, continuation: str | None
    ) -> tuple[list[ModelSummary], str | None]:
        metas, token = page(
            self.models,
            "RowKey eq @meta and deleted eq false and latest_version gt 0",
            limit,
            continuation,
            lambda e: e,
            parameters={"meta": META},
        )
        aliases = self._alias_maps([m["PartitionKey"] for m in metas])
        return [self._summary(m, aliases[m["PartitionKey"]]) for m in metas], token

    def _alias_maps(self, names: list[str]) -> dict[str, dict[str, int]]:
        """The aliases of many models in one range query (a page of models is a range of
        names: the registry table is ordered by name), not one query per model."""
        found: dict[str, dict[str, int]] = {n: {} for n in names}
        if not names:
            return found
        for e in self.aliases.query_entities(
            "PartitionKey ge @lo and PartitionKey le @hi",
            parameters={"lo": min(names), "hi": max(names)},
        ):
            if e["PartitionKey"] in found:
                found[e["PartitionKey"]][e["RowKey"]] = int(e["version"])
        return found

    def get_model(self, name: str) -> ModelDetail:
        meta = self._meta(name)
        aliases = self.alias_map(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        versions = [
            VersionBrief(
                version=int(e["version"]),
                created_at=parse_iso(e["created_at"]),
                format=e["format"],
                status=e["status"],
                metrics=json.loads(e.get("metrics") or "{}"),
                aliases=sorted(by_version.get(int(e["version"]), [])),
            )
            for e in self.models.query_entities(
                "PartitionKey eq @n and RowKey lt @meta", parameters={"n": name, "meta": META}
            )
            if e.get("status") == "ready"
        ]
        return ModelDetail(**self._summary(meta, aliases).model_dump(), versions=versions)

    def list_versions(
        self, name: str, query: VersionQuery
    ) -> tuple[list[VersionSummary], str | None]:
        """One page of a model's versions, oldest first; filters by alias, tag or status."""
        self._meta(name)  # 404 for an unknown model
        aliases = self.alias_map(name)
        by_version: dict[int, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        query_filter = "PartitionKey eq @n and RowKey lt @meta and status eq @status"
        parameters: dict[str, Any] = {"n": name, "meta": META, "status": query.status}
        if query.alias is not None:
            if query.alias not in aliases:
                return [], None
            query_filter += " and RowKey eq @rk"
            parameters["rk"] = row_key(aliases[query.alias])
        rows, token = page(
            self.models,
            query_filter,
            query.limit,
            query.continuation_token,
            lambda e: e,
            parameters=parameters,
        )
        items = []
        for row in rows:
            tags = json.loads(row.get("tags") or "{}")
            if query.tag is not None:
                key, has_value, value = query.tag.partition("=")
                if key not in tags or (has_value and tags[key] != value):
                    continue
            version = int(row["version"])
            items.append(
                VersionSummary(
                    version=version,
                    created_at=parse_iso(row["created_at"]),
                    created_by=row.get("created_by", ""),
                    format=row["format"],
                    status=row["status"],
                    metrics=json.loads(row.get("metrics") or "{}"),
                    aliases=sorted(by_version.get(version, [])),
                    description=row.get("description", ""),
                    tags=tags,
                    task=row.get("task") or None,
                    promotion=json.loads(row["promotion"]) if row.get("promotion") else None,
                )
            )
        return items, token

    def newest_versions(self, names: list[str], count: int) -> dict[str, list[VersionInfo]]:
        """The ``count`` newest ready versions of each model in ``names``, newest first,
        from one range query over the version rows and one over the aliases."""
        wanted = set(names)
        rows: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        if not names:
            return {}
        for e in self.models.query_entities(
            "PartitionKey ge @lo and PartitionKey le @hi and RowKey lt @meta and status eq 'ready'",
            parameters={"lo": min(names), "hi": max(names), "meta": META},
        ):
            if e["PartitionKey"] in wanted:
                rows[e["PartitionKey"]].append(e)
        aliases = self._alias_maps(names)
        found: dict[str, list[VersionInfo]] = {}
        for name, versions in rows.items():
            versions.sort(key=lambda e: int(e["version"]), reverse=True)
            found[name] = [
                self._info(e, sorted(a for a, v in aliases[name].items() if v == int(e["version"])))
                for e in versions[:count]
            ]
        return found
