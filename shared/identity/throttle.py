"""Login throttling per username, kept in Table Storage so it holds across instances."""

from __future__ import annotations

import contextlib
import hashlib
import time

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.errors import TooManyRequests

PARTITION = "login"


def _key(username: str) -> str:
    # Hashed: the table then holds no usernames, including mistyped passwords-as-usernames.
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()


class LoginThrottle:
    def __init__(
        self, table: TableClient, max_failures: int, window_seconds: int, lockout_seconds: int
    ) -> None:
        self.table = table
        self.max_failures = max_failures
        self.window = window_seconds
        self.lockout = lockout_seconds

    def check(self, username: str) -> None:
        """Refuse with 429 while the username is locked out."""
        try:
            e = self.table.get_entity(PARTITION, _key(username))
        except ResourceNotFoundError:
            return
        remaining = int(e.get("locked_until") or 0) - int(time.time())
        if remaining > 0:
            raise TooManyRequests(
                "Too many failed sign-ins; try again later.",
                code="LOGIN_LOCKED",
                retry_after=remaining,
            )

    def failure(self, username: str) -> None:
        key = _key(username)
        for _ in range(5):  # optimistic concurrency: retry when another instance wrote
            now = int(time.time())
            try:
                e = self.table.get_entity(PARTITION, key)
            except ResourceNotFoundError:
                try:
                    self.table.create_entity(
                        {
                            "PartitionKey": PARTITION,
                            "RowKey": key,
                            "failures": 1,
                            "window_start": now,
                            "locked_until": 0,
                        }
                    )
                    self._lock_if_needed(1, key, now)
                    return
                except ResourceExistsError:
                    continue
            failures = int(e.get("failures") or 0)
            window_start = int(e.get("window_start") or 0)
            if now - window_start > self.window:
                failures, window_start = 0, now
            failures += 1
            locked_until = now + self.lockout if failures >= self.max_failures else 0
            if locked_until:
                failures, window_start = 0, now
            entity = {
                "PartitionKey": PARTITION,
                "RowKey": key,
                "failures": failures,
                "window_start": window_start,
                "locked_until": max(locked_until, int(e.get("locked_until") or 0)),
            }
            try:
                self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=e.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue

    def _lock_if_needed(self, failures: int, key: str, now: int) -> None:
        if failures >= self.max_failures:
            self.table.upsert_entity(
                {
                    "PartitionKey": PARTITION,
                    "RowKey": key,
                    "failures": 0,
                    "window_start": now,
                    "locked_until": now + self.lockout,
                },
                mode=UpdateMode.REPLACE,
            )

    def success(self, username: str) -> None:
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(PARTITION, _key(username))
