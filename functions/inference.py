"""The Open Inference Protocol (KServe V2 / Triton HTTP): /v2/... for unchanged clients.

Handlers only parse and respond; tensors, outputs and readiness live in
shared/prediction/oip.py. Every route keeps V2's error statuses (see ``v2``).
"""

from collections.abc import Callable
from functools import wraps

import azure.functions as func

from shared import services
from shared.auth import PUBLIC
from shared.errors import NotFound
from shared.http import Call, Routes, json_response
from shared.prediction import oip
from shared.settings import get_settings

bp = func.Blueprint()
routes = Routes(bp, tag="inference")

Handler = Callable[[Call], func.HttpResponse]


def v2(handler: Handler) -> Handler:
    """Run the handler under V2's error rules (400 for bad requests, an ``error`` member)."""

    @wraps(handler)
    def wrapped(call: Call) -> func.HttpResponse:
        with oip.v2_errors():
            return handler(call)

    return wrapped


def _service() -> oip.InferenceService:
    # Stateless over the process-wide predictor (its loader caches the models).
    return oip.InferenceService(services.predictor(), services.model_registry())


def _version(call: Call) -> int | None:
    raw = call.param("version")
    if not raw:
        return None
    version = int(raw)  # the route's :int constraint guarantees digits
    if version < 1:
        raise NotFound(
            f"Model '{call.param('model')}' has no version {version}.", code="VERSION_NOT_FOUND"
        )
    return version


def _infer(call: Call) -> func.HttpResponse:
    oip.refuse_binary(call.req.headers.get("inference-header-content-length"))
    body = call.json(oip.V2InferRequest, limit=get_settings().max_predict_body_bytes)
    result = _service().infer(call.param("model"), body, _version(call), call.request_id)
    return json_response(
        result.model_dump(exclude_none=True), headers={"X-Model-Version": result.model_version}
    )


@routes.post(
    "v2/models/{model}/infer",
    auth="predict",
    body=oip.V2InferRequest,
    response=oip.V2InferResponse,
    errors=(400, 404, 413),
    audited=False,
)
@v2
def v2_infer(call: Call) -> func.HttpResponse:
    """V2 inference with the alias in parameters.alias, else champion-else-latest."""
    return _infer(call)


@routes.post(
    "v2/models/{model}/versions/{version:int}/infer",
    auth="predict",
    body=oip.V2InferRequest,
    response=oip.V2InferResponse,
    errors=(400, 404, 413),
    audited=False,
)
@v2
def v2_infer_version(call: Call) -> func.HttpResponse:
    """V2 inference with one version."""
    return _infer(call)


def _metadata(call: Call) -> func.HttpResponse:
    return json_response(_service().metadata(call.param("model"), _version(call)))


@routes.get(
    "v2/models/{model}",
    auth="predict",
    response=oip.V2ModelMetadata,
    errors=(400, 404),
    audited=False,
)
@v2
def v2_model_metadata(call: Call) -> func.HttpResponse:
    """V2 model metadata (champion-else-latest): inputs in feature order, outputs, versions."""
    return _metadata(call)


@routes.get(
    "v2/models/{model}/versions/{version:int}",
    auth="predict",
    response=oip.V2ModelMetadata,
    errors=(400, 404),
    audited=False,
)
@v2
def v2_model_version_metadata(call: Call) -> func.HttpResponse:
    """V2 metadata of one version."""
    return _metadata(call)


def _ready(call: Call) -> func.HttpResponse:
    return json_response(_service().ready(call.param("model"), _version(call)))


@routes.get(
    "v2/models/{model}/ready",
    auth="predict",
    response=oip.V2ModelReady,
    errors=(400, 404),
    audited=False,
)
@v2
def v2_model_ready(call: Call) -> func.HttpResponse:
    """Loads (warms) the default version; 404 unknown, 503 when it cannot be loaded."""
    return _ready(call)


@routes.get(
    "v2/models/{model}/versions/{version:int}/ready",
    auth="predict",
    response=oip.V2ModelReady,
    errors=(400, 404),
    audited=False,
)
@v2
def v2_model_version_ready(call: Call) -> func.HttpResponse:
    """Loads (warms) one version; 404 unknown, 503 when it cannot be loaded."""
    return _ready(call)


@routes.get("v2", auth=PUBLIC, response=oip.V2ServerMetadata, audited=False)
@v2
def v2_server_metadata(call: Call) -> func.HttpResponse:
    """V2 server metadata: name, build (GIT_METADATA), extensions."""
    return json_response(oip.server_metadata(get_settings().git_metadata))


@routes.get("v2/health/live", auth=PUBLIC, response=oip.V2ServerLive, audited=False)
@v2
def v2_health_live(call: Call) -> func.HttpResponse:
    """V2 liveness: the process answers (touches no dependency)."""
    return json_response(oip.V2ServerLive(live=True), headers={"Cache-Control": "no-store"})


@routes.get("v2/health/ready", auth=PUBLIC, response=oip.V2ServerReady, audited=False)
@v2
def v2_health_ready(call: Call) -> func.HttpResponse:
    """V2 readiness: 200 when storage (and Key Vault, if used) answer, else 503."""
    ready = oip.server_ready(get_settings(), services.storage, services.secret_store)
    return json_response(ready, headers={"Cache-Control": "no-store"})
