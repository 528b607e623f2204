"""The HTTP edge's audit hook: what gets written to the audit trail after each request.

Every mutating request is written. Refusals (401/403/429, failed logins) are anyone's to
cause, so one row each would let anybody write storage at will. They are aggregated per
(source address, principal, method, route, status) and window (60 s): the first refusal
of a key in a window is written, the others are counted in memory and their number lands
in the key's next row (``repeated``). A global cap of rows per window (100 per instance
and window) bounds what forged sources can write; past it refusals are counted in the log
only. Failed logins never store the typed username (it is often a password typed in the
wrong field).
"""

from __future__ import annotations

import threading
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
LOGIN_ROUTE = "auth/jwt/login"

log = get_logger("audit")


class RefusalAggregator:
    """Decides which refusals get a row: the first per key and window, under a global cap."""

    def __init__(self, window_seconds: float = 60.0, max_rows: int = 100) -> None:
        self.window_seconds = window_seconds
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._window = -1
        self._written = 0
        self._seen: dict[tuple[str, ...], int] = {}  # key -> refusals since its last row
        self._pending: dict[tuple[str, ...], int] = {}  # counts carried from past windows
        self.uncapped = 0  # refusals past the cap (logged, never stored)

    def admit(self, key: tuple[str, ...], now: float) -> int | None:
        """None: count it, write nothing. Else write a row; the int is how many identical
        refusals were left unwritten since the key's previous row."""
        with self._lock:
            window = int(now // self.window_seconds)
            if window != self._window:
                for old, count in self._seen.items():
                    if count > 1 and len(self._pending) < 10_000:
                        self._pending[old] = self._pending.get(old, 0) + count - 1
                self._seen.clear()
                self._window, self._written = window, 0
            if key in self._seen:
                self._seen[key] += 1
                return None
            if self._written >= self.max_rows or len(self._seen) >= 10_000:
                self.uncapped += 1
                return None
            self._seen[key] = 1
            self._written += 1
            return self._pending.pop(key, 0)


REFUSALS = RefusalAggregator()


def client_address(call: Call) -> str:
    """The address the trusted front end appended last to X-Forwarded-For (the caller's
    own entries come first and are not believed)."""
    forwarded = call.req.headers.get("x-forwarded-for") or ""
    last = forwarded.split(",")[-1].strip()
    return last[:64] or "unknown"


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
    refused = status in REFUSED or (op.route == LOGIN_ROUTE and status >= 400)
    if not ((method in MUTATING and op.audited) or refused):
        return
    principal = call.principal
    source = client_address(call)
    repeated: int | None = None
    if refused:
        key = (source, principal.user_id if principal else "", method, op.route, str(status))
        repeated = REFUSALS.admit(key, time.time())
        if repeated is None:
            return
    entry = AuditEntry(
        at=datetime.fromtimestamp(time.time(), UTC),
        # audit_detail's username is set by a successful login only.
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
        source=source,
        repeated=repeated or None,
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
