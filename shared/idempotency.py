"""Idempotency-Key handling: a retried request returns the first result, not a second run.

The key is reserved (insert-if-absent) before the work starts, so two concurrent
retries cannot both run it; the result is stored when the work finishes. Keys live
24 hours. Reusing a key for a different request is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import Conflict, ValidationFailed

TTL_SECONDS = 24 * 3600


def _row_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def begin(self, scope: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored result of an earlier identical request, or None after reserving the key."""
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise ValidationFailed("Idempotency-Key must be 1-255 printable characters.")
        entity = {
            "PartitionKey": scope,
            "RowKey": _row_key(key),
            "fingerprint": fingerprint,
            "state": "pending",
            "created": int(time.time()),
            "result": "",
        }
        try:
            self.table.create_entity(entity)
            return None
        except ResourceExistsError:
            pass
        existing = self.table.get_entity(scope, entity["RowKey"])
        if int(existing.get("created") or 0) < time.time() - TTL_SECONDS:
            self.table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return None
        if existing["fingerprint"] != fingerprint:
            raise ValidationFailed(
                "This Idempotency-Key was used for a different request.",
                [{"loc": ["header", "Idempotency-Key"], "msg": "reused", "type": "idempotency"}],
            )
        if existing["state"] != "done":
            raise Conflict(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                code="IDEMPOTENCY_IN_PROGRESS",
                headers={"Retry-After": "2"},
            )
        return json.loads(existing["result"])

    def complete(self, scope: str, key: str, result: dict[str, Any]) -> None:
        self.table.update_entity(
            {
                "PartitionKey": scope,
                "RowKey": _row_key(key),
                "state": "done",
                "result": json.dumps(result, default=str),
            },
            mode=UpdateMode.MERGE,
        )

    def abandon(self, scope: str, key: str) -> None:
        """Release the key after a failure so a retry can run the work."""
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(scope, _row_key(key))
