"""Monitoring: drift against the training profile, evaluation on labelled data.

The statistics live in ``shared/monitoring`` (imported here for their pydantic bodies
only; numpy, scipy and pandas load on the first call).
"""

import azure.functions as func

from shared.http import Call, Routes, json_response
from shared.http.guard import require
from shared.identity.principal import DATASET_SCOPE
from shared.monitoring.schemas import (
    DriftReport,
    DriftRequest,
    EvaluateRequest,
    EvaluationReport,
    RecentDriftQuery,
)
from shared.names import check_name

bp = func.Blueprint()
routes = Routes(bp, tag="monitoring")


@routes.post(
    "models/{name}/drift",
    auth="models:read",
    rate_group="drift",
    body=DriftRequest,
    response=DriftReport,
    errors=(404, 409, 413),
    audited=False,
)
def drift(call: Call) -> func.HttpResponse:
    """Records or a dataset vs the version's training profile (KS / chi-square, PSI)."""
    name = check_name(call.param("name"), "model")
    body = call.json(DriftRequest, limit=call.settings.max_predict_body_bytes)
    monitor = call.services.drift_monitor
    if body.records is not None:
        return json_response(monitor.on_records(name, body))
    require(call.user, DATASET_SCOPE)  # a dataset's statistics are its contents
    return json_response(monitor.on_dataset(name, body))


@routes.get(
    "models/{name}/drift/recent",
    auth="models:read",
    rate_group="drift",
    query=RecentDriftQuery,
    response=DriftReport,
    errors=(404, 409),
    audited=False,
)
def drift_recent(call: Call) -> func.HttpResponse:
    """The inputs of the logged predictions of the last `hours` vs the training profile."""
    name = check_name(call.param("name"), "model")
    return json_response(call.services.drift_monitor.on_recent(name, call.query(RecentDriftQuery)))


@routes.post(
    "models/{name}/versions/{version:int}/evaluate",
    auth="models:read",
    rate_group="evaluate",
    body=EvaluateRequest,
    response=EvaluationReport,
    errors=(404, 409),
    audited=False,
)
def evaluate(call: Call) -> func.HttpResponse:
    """Metrics, confusion matrix or residuals, and the worst rows on a labelled dataset."""
    name = check_name(call.param("name"), "model")
    body = call.json(EvaluateRequest)
    require(call.user, DATASET_SCOPE)  # worst rows and metrics reveal the dataset
    return json_response(call.services.evaluator.evaluate(name, int(call.param("version")), body))
