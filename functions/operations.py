"""Operating the instance: GET /metrics (Prometheus text) and GET /status (admin)."""

import os

import azure.functions as func

from shared import metrics
from shared.http import Call, Routes, json_response
from shared.identity.principal import ADMIN
from shared.status import InstanceStatus, instance_status

bp = func.Blueprint()
routes = Routes(bp, tag="operations")


@routes.get(
    "metrics",
    auth="metrics:read",
    response_content_type="text/plain",
    audited=False,
)
def get_metrics(call: Call) -> func.HttpResponse:
    """Prometheus metrics of this instance: requests, latency, predictions, training, cache."""
    body, content_type = metrics.exposition()
    return func.HttpResponse(
        body=body,
        status_code=200,
        headers={"Content-Type": content_type, "Cache-Control": "no-store"},
    )


@routes.get("status", auth=ADMIN, response=InstanceStatus, audited=False)
def get_status(call: Call) -> func.HttpResponse:
    """Memory, CPU and disk of this instance, its uptime and the models it holds."""
    services = call.services
    loaded = services.model_loader.loaded_models() if services.is_built("model_loader") else []
    status = instance_status(
        call.settings.git_metadata,
        os.environ.get("WEBSITE_INSTANCE_ID", "")[:16] or "local",
        loaded,
    )
    return json_response(status, headers={"Cache-Control": "no-store"})
