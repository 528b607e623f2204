"""The audit trail: every mutating request and every refused one, written before replying.

Rows are keyed newest-first (inverted day partition, inverted millisecond row key) so
``GET /audit`` pages from the most recent entry without sorting.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from shared.observability import get_logger
from shared.storage_deadline import storage_tripped
from shared.tables import page, utcnow

if TYPE_CHECKING:
    from shared.http.endpoint import Call, Operation

TABLE = "Audit"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSED = frozenset({401, 403, 429})

log = get_logger("audit")


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

    def query(self, q: AuditQuery) -> tuple[list[AuditEntry], str | None]:
        until = (q.until or utcnow()).astimezone(UTC)
        since = (q.since or until - timedelta(days=30)).astimezone(UTC)
        clauses = ["PartitionKey ge @lo", "PartitionKey le @hi"]
        params: dict[str, Any] = {"lo": _partition(until), "hi": _partition(since)}
        if q.user:
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


def after_request(call: Call, op: Operation, status: int, elapsed_ms: float) -> None:
    """Record the request if it changed something or was refused; never fail the response."""
    method = call.req.method.upper()
    if not ((method in MUTATING and op.audited) or status in REFUSED):
        return
    principal = call.principal
    entry = AuditEntry(
        at=datetime.fromtimestamp(time.time(), UTC),
        principal=principal.username
        if principal
        else call.audit_detail.get("username", "anonymous"),
        principal_id=principal.user_id if principal else None,
        credential=principal.kind if principal else None,
        method=method,
        route=op.route,
        path=call.path[:500],
        status=status,
        duration_ms=round(elapsed_ms, 2),
        request_id=call.request_id,
    )
    failure = "audit record could not be written"
    extra = {"route": op.route, "audit": entry.model_dump(mode="json")}
    if storage_tripped():
        # Storage already failed to answer within this request's budget: waiting for it
        # again would only hold the 503. The full record goes to the log instead.
        log.error(failure, extra=extra)
        return
    try:
        from shared.services import audit_log

        audit_log().record(entry)
    except Exception:
        log.exception(failure, extra=extra)  # the full record survives in the log
