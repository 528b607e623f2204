"""Login throttling, kept in Table Storage so it holds across instances.

Why this shape: a lock per username alone lets anyone lock anyone out (five bad
guesses, forever). So failures are counted per (username, client address): a client
that keeps guessing locks only itself out of that account, for a time that doubles with
each lockout (LOGIN_LOCKOUT_SECONDS, 2x, 4x... capped at an hour). A guesser spread over
many addresses still trips a per-username lock after ``ACCOUNT_FACTOR`` times as many
failures, but that lock does not stop a client the account has signed in from before
with the right password (a known-good client), so the owner is not locked out by it.
An admin can clear every lock of an account at once (``POST /users/{id}/unlock``).

Rows live in one partition per hashed username: the table holds no usernames (which
are sometimes passwords typed in the wrong field) and no addresses in clear.
"""

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

ACCOUNT = "account"  # the per-username row
ACCOUNT_FACTOR = 10  # failures over all clients that lock the account for unknown clients
MAX_LOCKOUT_SECONDS = 3600
GOOD_CLIENT_DAYS = 90
LOCK_MEMORY_SECONDS = 86_400  # lockouts older than this no longer lengthen the next one


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _partition(username: str) -> str:
    return _hash(username.strip().lower())


def _client_row(client: str) -> str:
    return "c-" + _hash(client)[:32]


def _good_row(client: str) -> str:
    return "g-" + _hash(client)[:32]


class LoginThrottle:
    def __init__(
        self, table: TableClient, max_failures: int, window_seconds: int, lockout_seconds: int
    ) -> None:
        self.table = table
        self.max_failures = max_failures
        self.window = window_seconds
        self.lockout = lockout_seconds

    def _get(self, partition: str, row: str) -> dict | None:
        try:
            return self.table.get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def check(self, username: str, client: str = "unknown") -> None:
        """429 while this client is locked out of the account, or the whole account is
        locked and this client has never signed in to it."""
        partition = _partition(username)
        now = int(time.time())
        remaining = int((self._get(partition, _client_row(client)) or {}).get("locked_until") or 0)
        account = int((self._get(partition, ACCOUNT) or {}).get("locked_until") or 0)
        if account > now and not self._known_good(partition, client, now):
            remaining = max(remaining, account)
        if remaining - now > 0:
            raise TooManyRequests(
                "Too many failed sign-ins; try again later.",
                code="LOGIN_LOCKED",
                retry_after=remaining - now,
            )

    def _known_good(self, partition: str, client: str, now: int) -> bool:
        good = self._get(partition, _good_row(client))
        return bool(good) and now - int(good.get("at") or 0) < GOOD_CLIENT_DAYS * 86_400

    def failure(self, username: str, client: str = "unknown") -> None:
        partition = _partition(username)
        self._count(partition, _client_row(client), self.max_failures)
        self._count(partition, ACCOUNT, self.max_failures * ACCOUNT_FACTOR)

    def _count(self, partition: str, row: str, limit: int) -> None:
        for _ in range(5):  # optimistic concurrency: retry when another instance wrote
            now = int(time.time())
            e = self._get(partition, row)
            old = e or {}
            failures = int(old.get("failures") or 0)
            window_start = int(old.get("window_start") or 0)
            locks = int(old.get("locks") or 0)
            if now - int(old.get("locked_at") or 0) > LOCK_MEMORY_SECONDS:
                locks = 0
            if now - window_start > self.window:
                failures, window_start = 0, now
            failures += 1
            entity = {
                "PartitionKey": partition,
                "RowKey": row,
                "failures": failures,
                "window_start": window_start,
                "locks": locks,
                "locked_at": int(old.get("locked_at") or 0),
                "locked_until": int(old.get("locked_until") or 0),
            }
            if failures >= limit:  # progressive: each lockout twice the previous one
                seconds = min(self.lockout * 2**locks, MAX_LOCKOUT_SECONDS)
                entity.update(
                    failures=0,
                    window_start=now,
                    locks=locks + 1,
                    locked_at=now,
                    locked_until=max(now + seconds, entity["locked_until"]),
                )
            try:
                if e is None:
                    self.table.create_entity(entity)
                else:
                    self.table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=e.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                return
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue

    def success(self, username: str, client: str = "unknown") -> None:
        """The right password: this client's count is cleared and it becomes known-good."""
        partition = _partition(username)
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(partition, _client_row(client))
        if self._known_good(partition, client, int(time.time()) - GOOD_CLIENT_DAYS * 43_200):
            return  # marked within the last half-period: no write per login
        self.table.upsert_entity(
            {"PartitionKey": partition, "RowKey": _good_row(client), "at": int(time.time())},
            mode=UpdateMode.REPLACE,
        )

    def unlock(self, username: str) -> int:
        """Clear every lock and count of the account (known-good clients stay); how many."""
        partition = _partition(username)
        cleared = 0
        rows = self.table.query_entities(
            "PartitionKey eq @p", parameters={"p": partition}, select=["RowKey"]
        )
        for e in list(rows):
            if e["RowKey"].startswith("g-"):
                continue
            with contextlib.suppress(ResourceNotFoundError):
                self.table.delete_entity(partition, e["RowKey"])
                cleared += 1
        return cleared
