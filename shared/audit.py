"""The audit trail store: every mutating request and every refused one.

What is recorded, and when, is the HTTP edge's decision (``shared/http/audit_hook.py``).

Rows are keyed newest-first (inverted day partition, inverted millisecond row key) so
``GET /audit`` pages from the most recent entry without sorting.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from shared.tables import page, utcnow


class AuditEntry(BaseModel):
    at: datetime
    principal: str
    principal_id: str | None = None
    credential: str | None = None
    method: str
    route: str
    path: str
    status: int
    duration_ms: float
    request_id: str
    source: str | None = Field(default=None, description="Client address (X-Forwarded-For).")
    repeated: int | None = Field(
        default=None, description="Refusals: identical ones since this key's last row."
    )


class AuditQuery(BaseModel):
    user: str | None = Field(default=None, max_length=64)
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(default=50, ge=1, le=200)
    continuation_token: str | None = Field(default=None, max_length=4096)


class AuditPage(BaseModel):
    items: list[AuditEntry]
    continuation_token: str | None = None


def _partition(day: datetime) -> str:
    return f"{99999999 - int(day.strftime('%Y%m%d')):08d}"


class AuditLog:
    def __init__(self, table: Any) -> None:
        self.table = table

    def record(self, entry: AuditEntry) -> None:
        ms = int(entry.at.timestamp() * 1000)
        row = {
            "PartitionKey": _partition(entry.at),
            "RowKey": f"{10**13 - ms:013d}-{entry.request_id}",
            **entry.model_dump(mode="json"),
        }
        # One attempt only: an outage must not hold the response for the retry schedule.
        self.table.upsert_entity(row, retry_total=0)

    def query(
        self, q: AuditQuery, *, user_id: str | None = None
    ) -> tuple[list[AuditEntry], str | None]:
        until = (q.until or utcnow()).astimezone(UTC)
        since = (q.since or until - timedelta(days=30)).astimezone(UTC)
        clauses = ["PartitionKey ge @lo", "PartitionKey le @hi"]
        params: dict[str, Any] = {"lo": _partition(until), "hi": _partition(since)}
        if user_id:  # by id: a re-created namesake never sees a deleted user's rows
            clauses.append("principal_id eq @uid")
            params["uid"] = user_id
        elif q.user:
            clauses.append("principal eq @user")
            params["user"] = q.user
        clauses.append("at ge @since and at le @until")
        params["since"] = since.isoformat().replace("+00:00", "Z")
        params["until"] = until.isoformat().replace("+00:00", "Z")
        return page(
            self.table,
            " and ".join(clauses),
            q.limit,
            q.continuation_token,
            lambda e: AuditEntry.model_validate(
                {k: v for k, v in e.items() if k in AuditEntry.model_fields}
            ),
            parameters=params,
        )
