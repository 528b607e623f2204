"""Model tools: a version's preprocessed features, and a smaller quantized copy of it."""

import azure.functions as func

from shared.http import Call, Routes, json_response
from shared.names import check_name
from shared.prediction.schemas import (
    QuantizeRequest,
    QuantizeResult,
    TransformRequest,
    TransformResult,
)

bp = func.Blueprint()
routes = Routes(bp, tag="models")


def _version(call: Call) -> tuple[str, int]:
    return check_name(call.param("name"), "model"), int(call.param("version"))


@routes.post(
    "models/{name}/versions/{version:int}/transform",
    auth="models:read",
    body=TransformRequest,
    response=TransformResult,
    errors=(404, 409, 413),
    audited=False,
)
def transform(call: Call) -> func.HttpResponse:
    """The pipeline's preprocessed features for records (imputed, scaled, one-hot)."""
    name, version = _version(call)
    settings = call.settings
    body = call.json(TransformRequest, limit=settings.max_predict_body_bytes)
    return json_response(call.services.transformer.transform(name, version, body))


@routes.post(
    "models/{name}/versions/{version:int}/quantize",
    auth="models:write",
    body=QuantizeRequest,
    response=QuantizeResult,
    status=201,
    errors=(404, 409, 413),
)
def quantize(call: Call) -> func.HttpResponse:
    """A new version with an int8-quantized ONNX; size, latency and output deltas."""
    name, version = _version(call)
    body = call.json(QuantizeRequest, limit=call.settings.max_predict_body_bytes)
    result, created = call.services.quantizer.quantize(name, version, body, call.user.username)
    return json_response(
        result, status=201, headers={"Location": f"/models/{name}/versions/{created.version}"}
    )
