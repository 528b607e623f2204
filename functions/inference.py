"""The Open Inference Protocol (KServe V2 / Triton HTTP): /v2/... for unchanged clients.

Handlers only parse and respond; tensors, outputs and readiness live in
shared/prediction/oip/. Every route keeps V2's error statuses (see ``v2``).
"""

from collections.abc import Callable
from functools import wraps

import azure.functions as func

from shared.errors import NotFound
from shared.http import Call, Routes, encoded_json_response, json_response
from shared.identity.principal import PUBLIC
from shared.prediction import oip

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


def _each_version(
    method: str, suffix: str, name: str, **doc: object
) -> Callable[[Handler], Handler]:
    """Register one handler on ``v2/models/{model}{suffix}`` and on its per-version twin."""

    def register(handler: Handler) -> Handler:
        common = {"auth": "predict", "audited": False, **doc}
        handler = v2(handler)
        routes.route(method, f"v2/models/{{model}}{suffix}", name=name, **common)(handler)
        routes.route(
            method,
            f"v2/models/{{model}}/versions/{{version:int}}{suffix}",
            name=name.replace("v2_model", "v2_model_version", 1)
            if name.startswith("v2_model")
            else f"{name}_version",
            **common,
        )(handler)
        return handler

    return register


@_each_version(
    "POST",
    "/infer",
    "v2_infer",
    body=oip.V2InferRequest,
    response=oip.V2InferResponse,
    errors=(400, 404, 413),
    rate_group="predict",
)
def v2_infer(call: Call) -> func.HttpResponse:
    """V2 inference: the version in the URL, else parameters.alias, else champion-else-latest."""
    oip.refuse_binary(call.req.headers.get("inference-header-content-length"))
    body = call.json(oip.V2InferRequest, limit=call.settings.max_predict_body_bytes)
    result = call.services.inference.infer(
        call.param("model"), body, _version(call), call.request_id
    )
    import orjson  # lazy: not on the import path of function_app

    # orjson: a 10,000-row answer holds tens of thousands of numbers.
    return encoded_json_response(
        orjson.dumps(result.model_dump(exclude_none=True)),
        headers={"X-Model-Version": result.model_version},
    )


@_each_version("GET", "", "v2_model_metadata", response=oip.V2ModelMetadata, errors=(400, 404))
def v2_model_metadata(call: Call) -> func.HttpResponse:
    """V2 model metadata: inputs in feature order, outputs, versions."""
    return json_response(call.services.inference.metadata(call.param("model"), _version(call)))


@_each_version("GET", "/ready", "v2_model_ready", response=oip.V2ModelReady, errors=(400, 404))
def v2_model_ready(call: Call) -> func.HttpResponse:
    """Loads (warms) the version; 404 unknown, 503 when it cannot be loaded."""
    return json_response(call.services.inference.ready(call.param("model"), _version(call)))


@routes.get("v2", auth=PUBLIC, response=oip.V2ServerMetadata, audited=False)
@v2
def v2_server_metadata(call: Call) -> func.HttpResponse:
    """V2 server metadata: name, build (GIT_METADATA), extensions."""
    return json_response(oip.server_metadata(call.settings.git_metadata))


@routes.get("v2/health/live", auth=PUBLIC, response=oip.V2ServerLive, audited=False)
@v2
def v2_health_live(call: Call) -> func.HttpResponse:
    """V2 liveness: the process answers (touches no dependency)."""
    return json_response(oip.V2ServerLive(live=True), headers={"Cache-Control": "no-store"})


@routes.get("v2/health/ready", auth=PUBLIC, response=oip.V2ServerReady, audited=False)
@v2
def v2_health_ready(call: Call) -> func.HttpResponse:
    """V2 readiness: 200 when storage (and Key Vault, if used) answer, else 503."""
    ready = oip.server_ready(
        call.settings, lambda: call.services.storage, lambda: call.services.secret_store
    )
    return json_response(ready, headers={"Cache-Control": "no-store"})
