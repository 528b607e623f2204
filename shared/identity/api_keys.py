"""API keys for machine clients: shown once, stored as a SHA-256 digest.

A key reads ``mlp_<id>_<secret>``; the id finds the row with one point read and the
secret (256 random bits, so a fast hash is enough) is compared in constant time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.identity.schemas import ApiKeyCreated, ApiKeyView
from shared.tables import iso, page, parse_iso, quote, utcnow

PARTITION = "keys"
_KEY_RE = re.compile(r"^mlp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _view(e: dict[str, Any]) -> ApiKeyView:
    return ApiKeyView(
        id=e["RowKey"],
        name=e["name"],
        scopes=json.loads(e["scopes"]),
        owner_id=e["owner_id"],
        owner=e["owner"],
        created_at=parse_iso(e["created_at"]),
        expires_at=parse_iso(e["expires_at"]) if e.get("expires_at") else None,
    )


class ApiKeyStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def create(
        self, owner_id: str, owner: str, name: str, scopes: list[str], expires_at: datetime | None
    ) -> ApiKeyCreated:
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        entity = {
            "PartitionKey": PARTITION,
            "RowKey": key_id,
            "name": name,
            "scopes": json.dumps(sorted(set(scopes))),
            "owner_id": owner_id,
            "owner": owner,
            "digest": _digest(secret),
            "created_at": iso(utcnow()),
            "expires_at": iso(expires_at) if expires_at else "",
        }
        self.table.create_entity(entity)
        return ApiKeyCreated(**_view(entity).model_dump(), key=f"mlp_{key_id}_{secret}")

    def verify(self, presented: str) -> ApiKeyView | None:
        """The key's record if the secret matches and it has not expired."""
        match = _KEY_RE.match(presented)
        if not match:
            return None
        key_id, secret = match.groups()
        try:
            e = self.table.get_entity(PARTITION, key_id)
        except ResourceNotFoundError:
            return None
        if not hmac.compare_digest(e["digest"], _digest(secret)):
            return None
        view = _view(e)
        if view.expires_at and view.expires_at <= utcnow():
            return None
        return view

    def get(self, key_id: str) -> ApiKeyView | None:
        if not re.fullmatch(r"[0-9a-f]{16}", key_id):
            return None
        try:
            return _view(self.table.get_entity(PARTITION, key_id))
        except ResourceNotFoundError:
            return None

    def list(
        self, owner_id: str | None, limit: int, continuation: str | None
    ) -> tuple[list[ApiKeyView], str | None]:
        query = f"PartitionKey eq {quote(PARTITION)}"
        if owner_id:
            query += f" and owner_id eq {quote(owner_id)}"
        return page(self.table, query, limit, continuation, _view)

    def delete(self, key_id: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(PARTITION, key_id)
