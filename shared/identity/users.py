"""Users in Table Storage.

Partition ``users`` holds two rows per user: ``id-<id>`` (the user) and
``name-<lowercased username>`` (a unique index pointing at the id). Both are
written and deleted in one entity-group transaction, so a username is never
taken twice and never left dangling.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.errors import Conflict
from shared.identity.schemas import USERNAME_PATTERN, UserView
from shared.tables import iso, page, parse_iso, utcnow

PARTITION = "users"
USERNAME_RE = re.compile(USERNAME_PATTERN)


@dataclass
class StoredUser:
    id: str
    username: str
    email: str | None
    roles: list[str]
    is_active: bool
    password_hash: str
    created_at: datetime
    updated_at: datetime
    # Tokens issued at or before this instant (epoch milliseconds) are refused: password
    # changes. Milliseconds, so a token from the same second as the reset dies too.
    tokens_valid_after_ms: int = 0
    etag: str | None = field(default=None, compare=False)

    def view(self) -> UserView:
        return UserView(
            id=self.id,
            username=self.username,
            email=self.email,
            roles=self.roles,
            is_active=self.is_active,
            created_at=self.created_at,
            updated_at=self.updated_at,
        )

    def entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": PARTITION,
            "RowKey": f"id-{self.id}",
            "username": self.username,
            "email": self.email or "",
            "roles": json.dumps(self.roles),
            "is_active": self.is_active,
            "password_hash": self.password_hash,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            # Text: milliseconds pass Table Storage's Int32 and Int64 comes back wrapped.
            "tokens_valid_after_ms": str(self.tokens_valid_after_ms),
        }

    @classmethod
    def from_entity(cls, e: dict[str, Any]) -> StoredUser:
        return cls(
            id=e["RowKey"][3:],
            username=e["username"],
            email=e.get("email") or None,
            roles=json.loads(e.get("roles") or "[]"),
            is_active=bool(e.get("is_active", True)),
            password_hash=e["password_hash"],
            created_at=parse_iso(e["created_at"]),
            updated_at=parse_iso(e["updated_at"]),
            tokens_valid_after_ms=_valid_after_ms(e),
            etag=e.metadata.get("etag") if hasattr(e, "metadata") else None,
        )


def _valid_after_ms(e: dict[str, Any]) -> int:
    if e.get("tokens_valid_after_ms") is not None:
        return int(e["tokens_valid_after_ms"])
    seconds = int(e.get("tokens_valid_after") or 0)  # rows written before milliseconds
    return seconds * 1000 + 999 if seconds else 0


def _name_key(username: str) -> str:
    return f"name-{username.lower()}"


class UserStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    def create(
        self, username: str, password_hash: str, roles: list[str], email: str | None = None
    ) -> StoredUser:
        now = utcnow()
        user = StoredUser(
            id=uuid.uuid4().hex,
            username=username,
            email=email,
            roles=roles,
            is_active=True,
            password_hash=password_hash,
            created_at=now,
            updated_at=now,
        )
        index = {"PartitionKey": PARTITION, "RowKey": _name_key(username), "user_id": user.id}
        try:
            self.table.submit_transaction([("create", index), ("create", user.entity())])
        except TableTransactionError as exc:
            if exc.status_code == 409 or "EntityAlreadyExists" in str(exc.error_code):
                raise Conflict(
                    f"The username '{username}' is taken.", code="USER_ALREADY_EXISTS"
                ) from None
            raise
        return user

    def get(self, user_id: str) -> StoredUser | None:
        if not re.fullmatch(r"[0-9a-f]{32}", user_id or ""):
            return None
        try:
            return StoredUser.from_entity(self.table.get_entity(PARTITION, f"id-{user_id}"))
        except ResourceNotFoundError:
            return None

    def get_by_username(self, username: str) -> StoredUser | None:
        if not USERNAME_RE.match(username or ""):
            return None
        try:
            index = self.table.get_entity(PARTITION, _name_key(username))
        except ResourceNotFoundError:
            return None
        return self.get(index["user_id"])

    def save(self, user: StoredUser) -> StoredUser:
        """Write back a changed user; a concurrent change in between is a 409."""
        user.updated_at = utcnow()
        try:
            meta = self.table.update_entity(
                user.entity(),
                mode=UpdateMode.REPLACE,
                etag=user.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise Conflict(
                "The user was changed by another request; retry.", code="CONCURRENT_UPDATE"
            ) from None
        except ResourceNotFoundError:
            raise Conflict("The user no longer exists.", code="USER_GONE") from None
        user.etag = meta.get("etag")
        return user

    def delete(self, user: StoredUser) -> None:
        try:
            self.table.submit_transaction(
                [
                    ("delete", {"PartitionKey": PARTITION, "RowKey": f"id-{user.id}"}),
                    ("delete", {"PartitionKey": PARTITION, "RowKey": _name_key(user.username)}),
                ]
            )
        except TableTransactionError as exc:
            if exc.status_code != 404:
                raise

    def list(self, limit: int, continuation: str | None) -> tuple[list[StoredUser], str | None]:
        return page(
            self.table,
            "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
            limit,
            continuation,
            StoredUser.from_entity,
            parameters={"pk": PARTITION, "lo": "id-", "hi": "id."},
        )
