"""Revoked token ids, stored so every instance refuses them, not only the one that revoked."""

from __future__ import annotations

import threading
import time

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

PARTITION = "jti"


class RevocationList:
    def __init__(self, table: TableClient, cache_seconds: float) -> None:
        self.table = table
        self._cache_seconds = cache_seconds
        # jti -> (checked_at, revoked); a revoked answer is final, a "not revoked" expires.
        self._seen: dict[str, tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def revoke(self, jti: str, expires_at: int) -> None:
        self.table.upsert_entity(
            {"PartitionKey": PARTITION, "RowKey": jti, "expires_at": expires_at},
            mode=UpdateMode.REPLACE,
        )
        with self._lock:
            self._seen[jti] = (time.monotonic(), True)

    def is_revoked(self, jti: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hit = self._seen.get(jti)
        if hit and (hit[1] or now - hit[0] < self._cache_seconds):
            return hit[1]
        try:
            self.table.get_entity(PARTITION, jti)
            revoked = True
        except ResourceNotFoundError:
            revoked = False
        with self._lock:
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen[jti] = (now, revoked)
        return revoked
