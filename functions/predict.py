"""Online prediction (the hot path), traffic splits between aliases, feedback."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, encoded_json_response, json_response
from shared.names import check_name
from shared.prediction.log import FeedbackAccepted, FeedbackBody
from shared.prediction.schemas import (
    AbResults,
    PredictBody,
    PredictOptions,
    PredictResponse,
    Traffic,
    TrafficBody,
)

bp = func.Blueprint()
routes = Routes(bp, tag="predict")


@routes.post(
    "predict/{model}",
    auth="predict",
    rate_group="predict",
    body=PredictBody,
    body_content_types=("application/json", "text/csv"),
    query=PredictOptions,
    response=PredictResponse,
    errors=(404, 409, 413, 415),
    audited=False,
)
def predict(call: Call) -> func.HttpResponse:
    """Predict for rows (JSON records or columnar, or CSV) with the champion, an alias, or a
    version. A CSV body (`text/csv`: a header row of feature names, then one row per
    record) takes its options from the query string; a JSON body from either place."""
    name = check_name(call.param("model"), "model")  # before storage sees it
    limit = call.settings.max_predict_body_bytes
    if call.content_type == "text/csv":
        from shared.prediction.csv_body import parse_predict_csv

        raw = call.text_bytes("text/csv", limit=limit)
        body = parse_predict_csv(raw, call.req.params, call.settings.max_predict_records)
    else:
        from shared.prediction.body import parse_predict_body

        body = parse_predict_body(call.json_bytes(limit=limit), call.req.params)
    result, logged = call.services.prediction_service.predict(
        name,
        body,
        routing_key=call.req.headers.get("x-routing-key"),
        request_id=call.request_id,
        owner_id=call.user.user_id,
    )
    return encoded_json_response(
        result.to_json(),
        headers={
            "X-Model-Version": str(result.version),
            "X-Prediction-Logged": "true" if logged else "false",
            "X-Prediction-ID": result.prediction_id,
        },
    )


@routes.put("models/{name}/traffic", auth="models:write", body=TrafficBody, response=Traffic)
def put_traffic(call: Call) -> func.HttpResponse:
    """Split online traffic between aliases by weight; optionally shadow-score one alias."""
    name = check_name(call.param("name"), "model")
    body = call.json(TrafficBody)
    registry = call.services.model_registry
    for alias in {*body.weights, *([body.shadow] if body.shadow else [])}:
        registry.get_alias(name, alias)  # 404 before a split to nowhere is stored
    return json_response(call.services.traffic_router.put(name, body, call.user.username))


@routes.get(
    "models/{name}/traffic", auth="models:read", response=Traffic, errors=(404,), audited=False
)
def get_traffic(call: Call) -> func.HttpResponse:
    """The current split, 404 when all traffic goes to the champion."""
    from shared.errors import NotFound

    traffic = call.services.traffic_router.get(check_name(call.param("name"), "model"))
    if traffic is None:
        raise NotFound(
            "No traffic split: the champion answers everything.", code="NO_TRAFFIC_SPLIT"
        )
    return json_response(traffic)


@routes.delete("models/{name}/traffic", auth="models:write", status=204)
def delete_traffic(call: Call) -> func.HttpResponse:
    """Remove the split: the champion answers everything again."""
    call.services.traffic_router.delete(check_name(call.param("name"), "model"))
    return empty_response(204)


@routes.get("models/{name}/ab-results", auth="models:read", response=AbResults, audited=False)
def ab_results(call: Call) -> func.HttpResponse:
    """Per-variant requests and latency, shadow agreement, feedback metrics per version."""
    name = check_name(call.param("name"), "model")
    task = None
    try:
        registry = call.services.model_registry
        task = registry.get_version(name, registry.resolve(name)).task
    except Exception:  # noqa: BLE001 - results stay readable after the model is gone
        task = None
    return json_response(call.services.prediction_service.ab_results(name, task))


@routes.post(
    "predictions/{id}/feedback",
    auth="predict",
    body=FeedbackBody,
    response=FeedbackAccepted,
    status=202,
    errors=(404,),
)
def feedback(call: Call) -> func.HttpResponse:
    """Ground truth for a logged prediction of yours (its `prediction_id`)."""
    body = call.json(FeedbackBody)
    user = call.user
    accepted = call.services.prediction_log.feedback(
        call.param("id"), user.user_id, body, is_admin=user.is_admin
    )
    return json_response(accepted, status=202)
