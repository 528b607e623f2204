"""The HTTP edge's audit hook: what gets written to the audit trail after each request."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.audit import AuditEntry, AuditLog
from shared.observability import get_logger
from shared.storage_deadline import storage_tripped

if TYPE_CHECKING:
    from shared.http.call import Call, Operation

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REFUSED = frozenset({401, 403, 429})

log = get_logger("audit")


def after_request(
    call: Call,
    op: Operation,
    status: int,
    elapsed_ms: float,
    audit_log: Callable[[], AuditLog],
) -> None:
    """Record the request if it changed something or was refused; never fail the response.

    ``audit_log`` is a factory: a request that is not recorded never builds the store."""
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
        audit_log().record(entry)
    except Exception:
        log.exception(failure, extra=extra)  # the full record survives in the log
