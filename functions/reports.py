"""Anomaly / quality reports over a window: built once, kept in Blob, JSON or printable HTML."""

import azure.functions as func

from shared.http import Call, Routes, json_response
from shared.monitoring.schemas import (
    Report,
    ReportFormat,
    ReportPage,
    ReportQuery,
    ReportRequest,
)

bp = func.Blueprint()
routes = Routes(bp, tag="monitoring")

# The page has no script and no external resource: its one style block is all it needs.
_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@routes.post(
    "reports",
    auth="models:read",
    body=ReportRequest,
    response=Report,
    status=201,
    errors=(404, 413),
)
def create_report(call: Call) -> func.HttpResponse:
    """Per partition: anomalies and their rate, top anomalous rows, drift, versions."""
    report = call.services.report_builder.build(call.json(ReportRequest), call.user.username)
    return json_response(report, status=201, headers={"Location": f"/reports/{report.id}"})


@routes.get("reports", auth="models:read", query=ReportQuery, response=ReportPage, audited=False)
def list_reports(call: Call) -> func.HttpResponse:
    """The newest reports, optionally of one model."""
    q = call.query(ReportQuery)
    return json_response(ReportPage(items=call.services.report_builder.list(q.model, q.limit)))


@routes.get(
    "reports/{id}",
    auth="models:read",
    query=ReportFormat,
    response=Report,
    errors=(404,),
    audited=False,
)
def get_report(call: Call) -> func.HttpResponse:
    """The report as JSON, or with ?format=html as a printable page."""
    from shared.monitoring.reports import render_html

    fmt = call.query(ReportFormat).format  # a bad format is a 422 before any read
    report = call.services.report_builder.get(call.param("id"))
    if fmt == "html":
        return func.HttpResponse(
            render_html(report),
            mimetype="text/html",
            charset="utf-8",
            headers={"Content-Security-Policy": _HTML_CSP, "X-Content-Type-Options": "nosniff"},
        )
    return json_response(report)
