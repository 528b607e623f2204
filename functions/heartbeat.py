"""Liveness and readiness: GET /heartbeat and GET /health (anonymous)."""

import azure.functions as func

from shared.health import DependencyStatus, HealthReport, Heartbeat, check_health
from shared.http import Call, Routes, json_response
from shared.identity.principal import PUBLIC

bp = func.Blueprint()
routes = Routes(bp, tag="health")


@routes.get("heartbeat", auth=PUBLIC, response=Heartbeat, audited=False)
def heartbeat(call: Call) -> func.HttpResponse:
    """The deployed build (GIT_METADATA), without touching any dependency."""
    return json_response(Heartbeat(version=call.settings.git_metadata))


@routes.get("health", auth=PUBLIC, response=HealthReport, audited=False)
def health(call: Call) -> func.HttpResponse:
    """Storage and Key Vault reachability; 503 naming what is down."""
    settings = call.settings
    try:
        report = check_health(settings, call.services.storage, call.services.secret_store)
    except Exception as exc:  # noqa: BLE001 - misconfiguration is also "not healthy"
        report = HealthReport(
            status="unavailable",
            version=settings.git_metadata,
            failing=["storage"],
            checks={"storage": DependencyStatus(status="unavailable", error=type(exc).__name__)},
        )
    status = 200 if report.status == "ok" else 503
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = "5"
    return json_response(report, status=status, headers=headers)
