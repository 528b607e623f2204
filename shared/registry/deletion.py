"""Deleting versions and models, resumably, and sweeping what crashed uploads left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode
from azure.storage.blob import ContainerClient

from shared.errors import Conflict, NotFound
from shared.names import check_name
from shared.registry.rows import META, row_key
from shared.storage_deadline import map_in_threads
from shared.tables import iso, utcnow


class RegistryDeletion:
    """The deletion half of :class:`~shared.registry.store.ModelRegistry`.

    A mixin over the registry's ``models``/``aliases`` tables and blob ``container``.
    """

    models: TableClient
    aliases: TableClient
    container: ContainerClient

    def alias_map(self, name: str) -> dict[str, int]:
        raise NotImplementedError

    def _meta(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    # --- deletion ---------------------------------------------------------------------------
    def delete_version(self, name: str, version: int, force: bool = False) -> None:
        """Resumable: a version marked ``deleting`` is finished by a retry or the sweeper."""
        check_name(name, "model")
        try:
            row = self.models.get_entity(name, row_key(version))
        except ResourceNotFoundError:
            raise NotFound(
                f"Model '{name}' has no version {version}.", code="VERSION_NOT_FOUND"
            ) from None
        pointing = sorted(a for a, v in self.alias_map(name).items() if v == version)
        if pointing and not force:
            raise Conflict(
                f"Aliases {', '.join(pointing)} point at version {version}; move them first"
                " or pass ?force=true.",
                code="VERSION_ALIASED",
                extra={"aliases": pointing},
            )
        if row.get("status") != "deleting":
            self.models.update_entity(
                {"PartitionKey": name, "RowKey": row_key(version), "status": "deleting"},
                mode=UpdateMode.MERGE,
            )
        for alias in pointing:
            self.aliases.delete_entity(name, alias)
        self._delete_prefix(f"{name}/{version}/")
        self.models.delete_entity(name, row_key(version))
        self._refresh_latest(name)

    def delete_model(self, name: str) -> None:
        meta = self._meta(name)
        for e in self.models.query_entities(
            "PartitionKey eq @n and RowKey lt @meta", parameters={"n": name, "meta": META}
        ):
            self.delete_version(name, int(e["version"]), force=True)
        # The counter survives as a tombstone: a re-created model never reuses a version.
        self.models.update_entity(
            {
                "PartitionKey": name,
                "RowKey": META,
                "deleted": True,
                "latest_version": 0,
                "updated_at": iso(utcnow()),
            },
            mode=UpdateMode.MERGE,
            etag=self.models.get_entity(name, META).metadata["etag"] if meta else None,
            match_condition=MatchConditions.IfNotModified,
        )

    def _refresh_latest(self, name: str) -> None:
        versions = [
            int(e["version"])
            for e in self.models.query_entities(
                "PartitionKey eq @n and RowKey lt @meta and status eq 'ready'",
                parameters={"n": name, "meta": META},
                select=["version"],
            )
        ]
        self.models.update_entity(
            {
                "PartitionKey": name,
                "RowKey": META,
                "latest_version": max(versions, default=0),
                "updated_at": iso(utcnow()),
            },
            mode=UpdateMode.MERGE,
        )

    def _delete_prefix(self, prefix: str) -> int:
        """Delete every blob under ``prefix``, several at a time; how many there were."""
        names = [b.name for b in self.container.list_blobs(name_starts_with=prefix)]

        def delete(name: str) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(name)

        map_in_threads(delete, names)
        return len(names)

    def _delete_orphan(self, path: str) -> None:
        try:
            self.container.delete_blob(path)
        except ResourceNotFoundError:
            # Only staged blocks, no committed blob to delete: commit an empty block list
            # (a 0-byte blob, dropping the blocks) and delete that.
            self.container.get_blob_client(path).commit_block_list([])
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(path)

    def sweep_orphans(
        self,
        older_than: timedelta = timedelta(hours=1),
        keep: Collection[tuple[str, int]] = (),
    ) -> int:
        """Delete blobs with no version row (a crashed upload: committed, 0-byte or only
        staged blocks) and finish pending deletions. ``keep``: (model, version) reserved by
        a training job still running, whose units write files before the row exists."""
        cutoff = utcnow() - older_than
        removed = 0
        known: dict[tuple[str, int], str | None] = {}
        for blob in self.container.list_blobs(include=["uncommittedblobs"]):
            parts = blob.name.split("/")
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            key = (parts[0], int(parts[1]))
            if key in keep:
                continue
            if key not in known:
                try:
                    known[key] = self.models.get_entity(key[0], row_key(key[1])).get("status")
                except ResourceNotFoundError:
                    known[key] = None
            last_modified: datetime = blob.last_modified
            if known[key] is None and last_modified < cutoff:
                self._delete_orphan(blob.name)
                removed += 1
        for (name, version), status in known.items():
            if status == "deleting":
                self.delete_version(name, version, force=True)
        return removed
