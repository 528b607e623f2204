"""The model registry: versions, downloads, integrity, aliases, decisions, comparisons."""

from datetime import timedelta

import azure.functions as func

from shared.container import Services
from shared.errors import NotFound, ValidationFailed
from shared.http import Call, Routes, empty_response, json_response
from shared.http.uploads import parse_multipart
from shared.identity.principal import ADMIN
from shared.names import check_alias, check_name
from shared.pages import PageQuery
from shared.registry.files import NewFile, find_file
from shared.registry.schemas import (
    AliasBody,
    AliasInfo,
    CompareBody,
    CompareResult,
    DecisionBody,
    DownloadQuery,
    ForceQuery,
    ModelDetail,
    ModelPage,
    VerifyResult,
    VersionCreated,
    VersionInfo,
    VersionPage,
    VersionQuery,
)

bp = func.Blueprint()
routes = Routes(bp, tag="models")

UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["model_file"],
    "properties": {
        "model_file": {"type": "string", "format": "binary", "description": ".onnx or .skops"},
        "artifact_files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "description": {"type": "string"},
        "metrics": {"type": "string", "description": 'JSON object, e.g. {"accuracy": 0.95}'},
        "tags": {"type": "string", "description": "JSON object of strings"},
        "features": {"type": "string", "description": 'JSON list of {"name","dtype"}'},
        "task": {"type": "string", "enum": ["classification", "regression", "anomaly"]},
        "alias": {"type": "string", "description": "e.g. champion"},
    },
}


def _version(call: Call) -> tuple[str, int]:
    return check_name(call.param("name"), "model"), int(call.param("version"))


@routes.get("models", auth="models:read", query=PageQuery, response=ModelPage, audited=False)
def list_models(call: Call) -> func.HttpResponse:
    """Registered models: description, latest version, aliases."""
    q = call.query(PageQuery)
    items, token = call.services.model_registry.list_models(q.limit, q.continuation_token)
    return json_response(ModelPage(items=items, continuation_token=token))


@routes.get("models/{name}", auth="models:read", response=ModelDetail, errors=(404,))
def get_model(call: Call) -> func.HttpResponse:
    """One model with its versions, aliases and tags."""
    return json_response(call.services.model_registry.get_model(call.param("name")))


@routes.get(
    "models/{name}/versions",
    auth="models:read",
    query=VersionQuery,
    response=VersionPage,
    errors=(404,),
    audited=False,
)
def list_versions(call: Call) -> func.HttpResponse:
    """A model's versions, oldest first (paginated); filter by alias, tag or status."""
    name = check_name(call.param("name"), "model")
    items, token = call.services.model_registry.list_versions(name, call.query(VersionQuery))
    return json_response(VersionPage(items=items, continuation_token=token))


@routes.post(
    "models/{name}/versions",
    auth="models:write",
    rate_group="upload",
    body_schema=UPLOAD_SCHEMA,
    body_content_types=("multipart/form-data",),
    response=VersionCreated,
    status=201,
    errors=(403, 409, 413, 415),
)
def upload_version(call: Call) -> func.HttpResponse:
    """Register a new version from an ONNX or skops file (honours Idempotency-Key)."""
    name = check_name(call.param("name"), "model")
    form = parse_multipart(call.req, call.settings.max_model_bytes)
    model_file = form.file("model_file")
    if model_file is None or not model_file.data:
        raise ValidationFailed(
            "The form needs a non-empty model_file.",
            [{"loc": ["body", "model_file"], "msg": "required", "type": "missing"}],
        )
    artifacts = [
        NewFile(f.filename, f.data)
        for key in ("artifact_files", "artifact_files[]")
        for f in form.files.get(key, [])
    ]
    result = call.services.model_uploads.upload(
        name,
        NewFile(model_file.filename, model_file.data),
        artifacts,
        form.fields,
        call.user,
        idempotency_key=call.req.headers.get("idempotency-key"),
    )
    headers = {"Location": f"/models/{name}/versions/{result.version.version}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(result.version, status=201, headers=headers)


@routes.get(
    "models/{name}/versions/{version:int}",
    auth="models:read",
    response=VersionInfo,
    errors=(404,),
    audited=False,
)
def get_version(call: Call) -> func.HttpResponse:
    """Everything about one version: files, metrics, features, lineage, decision."""
    return json_response(call.services.model_registry.get_version(*_version(call)))


@routes.get(
    "models/{name}/versions/{version:int}/download",
    auth="models:read",
    query=DownloadQuery,
    response_content_type="application/octet-stream",
    errors=(404, 409),
    audited=False,
)
def download_version(call: Call) -> func.HttpResponse:
    """The model file, or another file of the version with ?artifact=<path>; verified first."""
    name, version = _version(call)
    q = call.query(DownloadQuery)
    registry = call.services.model_registry
    info = registry.get_version(name, version)
    if q.artifact:
        wanted = q.artifact.removeprefix(f"models/{name}/{version}/")
        manifest = (
            call.services.model_loader.load(name, version=version).model
            if info.format == "partitioned"
            else None
        )
        stored = find_file(info, wanted, manifest) or find_file(info, f"artifacts/{wanted}")
        if stored is None or stored.role == "model":
            raise NotFound("No such file in this version.", code="ARTIFACT_NOT_FOUND")
    else:
        stored = next(f for f in info.files if f.role == "model")
    data = call.services.model_loader.read_verified(info, stored)
    filename = stored.path.rsplit("/", 1)[-1]
    return func.HttpResponse(
        data,
        mimetype="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Digest": f"sha-256={stored.sha256}",
            "X-Content-SHA256": stored.sha256,
        },
    )


@routes.get(
    "models/{name}/versions/{version:int}/verify",
    auth="models:read",
    response=VerifyResult,
    errors=(404,),
    audited=False,
)
def verify_version(call: Call) -> func.HttpResponse:
    """Recompute every file's SHA-256 from Blob and compare with the recorded one."""
    return json_response(call.services.model_registry.verify(*_version(call)))


@routes.get(
    "models/{name}/aliases/{alias}",
    auth="models:read",
    response=AliasInfo,
    errors=(404,),
    audited=False,
)
def get_alias(call: Call) -> func.HttpResponse:
    """Which version an alias points at."""
    return json_response(
        call.services.model_registry.get_alias(call.param("name"), call.param("alias"))
    )


@routes.put(
    "models/{name}/aliases/{alias}",
    auth="models:write",
    body=AliasBody,
    response=AliasInfo,
    errors=(404,),
)
def set_alias(call: Call) -> func.HttpResponse:
    """Point an alias at a version: promotion and rollback are this one move."""
    name = check_name(call.param("name"), "model")
    alias = check_alias(call.param("alias"))
    body = call.json(AliasBody)
    info = call.services.model_registry.set_alias(name, alias, body.version, call.user.username)
    call.services.model_loader.forget_aliases(name)
    return json_response(info)


@routes.delete("models/{name}/aliases/{alias}", auth="models:write", status=204, errors=(404,))
def delete_alias(call: Call) -> func.HttpResponse:
    """Remove an alias."""
    call.services.model_registry.delete_alias(call.param("name"), call.param("alias"))
    call.services.model_loader.forget_aliases(call.param("name"))
    return empty_response(204)


@routes.post(
    "models/{name}/versions/{version:int}/decision",
    auth="models:write",
    body=DecisionBody,
    response=VersionInfo,
    errors=(404, 409),
)
def decide(call: Call) -> func.HttpResponse:
    """Approve (moves champion), reject or defer a candidate version, with a justification."""
    name, version = _version(call)
    info = call.services.model_registry.decide(
        name, version, call.json(DecisionBody), call.user.username
    )
    call.services.model_loader.forget_aliases(name)
    return json_response(info)


@routes.post(
    "models/compare",
    auth="models:read",
    body=CompareBody,
    response=CompareResult,
    errors=(404,),
    audited=False,
)
def compare(call: Call) -> func.HttpResponse:
    """Metrics of several versions side by side, and the best per metric."""
    body = call.json(CompareBody)
    return json_response(call.services.model_registry.compare(body.models, body.metrics))


@routes.delete(
    "models/{name}/versions/{version:int}",
    auth=ADMIN,
    query=ForceQuery,
    status=204,
    errors=(404, 409),
)
def delete_version(call: Call) -> func.HttpResponse:
    """Delete a version (409 while an alias points at it, unless ?force=true)."""
    name, version = _version(call)
    call.services.model_registry.delete_version(name, version, force=call.query(ForceQuery).force)
    call.services.model_loader.forget_aliases(name)
    return empty_response(204)


@routes.delete("models/{name}", auth=ADMIN, status=204, errors=(404,))
def delete_model(call: Call) -> func.HttpResponse:
    """Delete a model, all its versions and aliases (version numbers are never reused)."""
    call.services.model_registry.delete_model(call.param("name"))
    call.services.model_loader.forget_aliases(call.param("name"))
    return empty_response(204)


@routes.timer("registry_cleanup", schedule="0 30 3 * * *")
def registry_cleanup(services: Services, timer: func.TimerRequest) -> None:
    """Remove blobs of interrupted uploads and finish interrupted deletions."""
    services.model_registry.sweep_orphans(
        older_than=timedelta(hours=1), keep=services.trainer.reserved_versions()
    )
