"""OpenTelemetry export to Application Insights, only when it is configured.

With APPLICATIONINSIGHTS_CONNECTION_STRING set (Bicep sets it in Azure), the Azure Monitor
distro exports traces (one server span per request), the ``ml_platform`` logs and
metrics; every span and log record carries the request id (``ml.request_id``), the same
value as the X-Request-ID header and the audit record. Application Insights has local
authentication disabled, so the managed identity named in
APPLICATIONINSIGHTS_AUTHENTICATION_STRING (``ClientId=...;Authorization=AAD``) signs in.

Without the connection string nothing is imported and nothing is started.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from shared.observability import request_id_var

_lock = threading.Lock()
_state: dict[str, Any] = {}


class _RequestIdFilter(logging.Filter):
    """Puts the current request id on each record; the exporter sends it as a dimension."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def _credential(environ: Mapping[str, str]) -> Any:
    """The managed identity for Entra ID auth to Application Insights, when asked for."""
    auth = dict(
        part.split("=", 1) for part in environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "")
        .split(";") if "=" in part
    )  # fmt: skip
    if auth.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=auth.get("ClientId") or None)


def start_if_configured(environ: Mapping[str, str] | None = None) -> bool:
    """Start exporting once per process; False (and nothing imported) when not configured."""
    environ = os.environ if environ is None else environ
    connection_string = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection_string:
        return False
    with _lock:
        if _state:
            return True
        from azure.monitor.opentelemetry import configure_azure_monitor
        from opentelemetry import context, trace

        configure_azure_monitor(
            connection_string=connection_string,
            credential=_credential(environ),
            logger_name="ml_platform",
            enable_live_metrics=False,
        )
        # On the handlers: a logger's own filters skip records propagated from children.
        for handler in logging.getLogger("ml_platform").handlers:
            handler.addFilter(_RequestIdFilter())
        _state["tracer"] = trace.get_tracer("ml_platform")
        _state["trace"] = trace
        _state["context"] = context
    return True


def is_active() -> bool:
    return bool(_state)


def start_request_span(route: str, method: str, request_id: str) -> Any:
    """A server span for one request, current until ``end_request_span``; None when off."""
    tracer = _state.get("tracer")
    if tracer is None:
        return None
    trace = _state["trace"]
    span = tracer.start_span(
        f"{method} /{route}",
        kind=trace.SpanKind.SERVER,
        attributes={"http.route": f"/{route}", "http.method": method, "ml.request_id": request_id},
    )
    token = _state["context"].attach(trace.set_span_in_context(span))
    return span, token


def end_request_span(handle: Any, status: int) -> None:
    if handle is None:
        return
    span, token = handle
    trace = _state["trace"]
    span.set_attribute("http.status_code", status)
    if status >= 500:
        span.set_status(trace.Status(trace.StatusCode.ERROR))
    _state["context"].detach(token)
    span.end()


def flush(timeout_millis: int = 5000) -> None:
    """Push what is buffered (tests; the exporters flush on their own otherwise)."""
    if not _state:
        return
    from opentelemetry import _logs, metrics, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
        force = getattr(provider, "force_flush", None)
        if force:
            force(timeout_millis)
    force = getattr(metrics.get_meter_provider(), "force_flush", None)
    if force:
        force(timeout_millis)
