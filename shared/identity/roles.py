"""Roles: named sets of scopes. ``admin`` and ``user`` are built in and read-only."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, NotFound
from shared.identity.principal import ALL_SCOPES
from shared.identity.schemas import Role, RoleBody, RoleCreate
from shared.tables import iso, utcnow

PARTITION = "roles"

BUILT_IN: dict[str, tuple[str, list[str]]] = {
    "admin": ("Everything, including users, roles and deletions.", [ALL_SCOPES]),
    "user": ("Read the registry and ask for predictions.", ["models:read", "predict"]),
    # The Data Factory service user: start training and poll its jobs, nothing else.
    "train-service": ("Start training and read training jobs (service users).", ["train"]),
}


def _from_entity(e: dict[str, Any]) -> Role:
    return Role(
        name=e["RowKey"],
        description=e.get("description", ""),
        scopes=json.loads(e.get("scopes") or "[]"),
        built_in=False,
        updated_at=e.get("updated_at"),
    )


class RoleStore:
    """Roles in Table Storage, with a short per-process cache for the guard's lookups."""

    def __init__(self, table: TableClient, cache_seconds: float = 10.0) -> None:
        self.table = table
        self._cache_seconds = cache_seconds
        self._cache: tuple[float, dict[str, Role]] | None = None
        self._lock = threading.Lock()

    def all(self, fresh: bool = False) -> dict[str, Role]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache
        if cached and not fresh and now - cached[0] < self._cache_seconds:
            return cached[1]
        roles = {
            name: Role(name=name, description=d, scopes=s, built_in=True)
            for name, (d, s) in BUILT_IN.items()
        }
        for e in self.table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}):
            roles.setdefault(e["RowKey"], _from_entity(e))
        with self._lock:
            self._cache = (now, roles)
        return roles

    def scopes_of(self, role_names: list[str]) -> frozenset[str]:
        roles = self.all()
        return frozenset(s for name in role_names if name in roles for s in roles[name].scopes)

    def get(self, name: str) -> Role:
        role = self.all(fresh=True).get(name)
        if role is None:
            raise NotFound(f"No role named '{name}'.", code="ROLE_NOT_FOUND")
        return role

    def create(self, body: RoleCreate) -> Role:
        if body.name in BUILT_IN:
            raise Conflict(f"'{body.name}' is a built-in role.", code="ROLE_ALREADY_EXISTS")
        entity = self._entity(body.name, body)
        try:
            self.table.create_entity(entity)
        except ResourceExistsError:
            raise Conflict(f"The role '{body.name}' exists.", code="ROLE_ALREADY_EXISTS") from None
        self._cache = None
        return _from_entity(entity)

    def put(self, name: str, body: RoleBody) -> tuple[Role, bool]:
        """Create or replace; returns (role, created)."""
        self._refuse_built_in(name)
        existed = name in self.all(fresh=True)
        entity = self._entity(name, body)
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self._cache = None
        return _from_entity(entity), not existed

    def delete(self, name: str) -> None:
        self._refuse_built_in(name)
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(PARTITION, name)
        self._cache = None

    def require_existing(self, names: list[str]) -> None:
        missing = sorted(set(names) - set(self.all(fresh=True)))
        if missing:
            raise NotFound(f"Unknown roles: {', '.join(missing)}.", code="ROLE_NOT_FOUND")

    @staticmethod
    def _refuse_built_in(name: str) -> None:
        if name in BUILT_IN:
            raise Conflict(f"The built-in role '{name}' cannot be changed.", code="ROLE_BUILT_IN")

    @staticmethod
    def _entity(name: str, body: RoleBody) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": name,
            "description": body.description,
            "scopes": json.dumps(body.scopes),
            "updated_at": iso(utcnow()),
        }
