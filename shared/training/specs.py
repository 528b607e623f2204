"""Training specs: what to train, from which dataset, how, and how to promote it."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import NotFound
from shared.names import check_name
from shared.tables import iso, parse_iso, utcnow
from shared.training.schemas import TrainingSpec, TrainingSpecBody

PARTITION = "specs"


def _from_entity(e: dict[str, Any]) -> TrainingSpec:
    body = json.loads(e["spec"])
    return TrainingSpec(
        **body,
        name=e["RowKey"],
        model=e["RowKey"],
        created_at=parse_iso(e["created_at"]),
        updated_at=parse_iso(e["updated_at"]),
        updated_by=e["updated_by"],
    )


class SpecStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def put(self, name: str, body: TrainingSpecBody, by: str) -> tuple[TrainingSpec, bool]:
        check_name(name, "spec")
        now = iso(utcnow())
        try:
            created_at = self.table.get_entity(PARTITION, name)["created_at"]
            created = False
        except ResourceNotFoundError:
            created_at, created = now, True
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": name,
            "spec": body.model_dump_json(),
            "enabled": body.enabled,
            "created_at": created_at,
            "updated_at": now,
            "updated_by": by,
        }
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        return _from_entity(entity), created

    def get(self, name: str) -> TrainingSpec:
        check_name(name, "spec")
        try:
            return _from_entity(self.table.get_entity(PARTITION, name))
        except ResourceNotFoundError:
            raise NotFound(f"No training spec named '{name}'.", code="SPEC_NOT_FOUND") from None

    def all(self, enabled_only: bool = False) -> list[TrainingSpec]:
        query = "PartitionKey eq @pk" + (" and enabled eq true" if enabled_only else "")
        specs = [
            _from_entity(e) for e in self.table.query_entities(query, parameters={"pk": PARTITION})
        ]
        return sorted(specs, key=lambda s: s.name)

    def delete(self, name: str) -> None:
        self.get(name)
        self.table.delete_entity(PARTITION, name)
