"""The OpenAPI 3.1 document, built from the operations the routes registered.

Schemas come from the same pydantic models the handlers parse and return, so the
document cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shared.http.endpoint import OPERATIONS, Operation
from shared.identity.principal import ADMIN, PUBLIC, SIGNED_IN

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+)[^}]*)?(\?)?\}")
_EMPTY_ONLY = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*:maxlength\(0\)\?\}")
_REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "Stable machine-readable error code."},
        "request_id": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

_STATUS_TEXT = {
    400: "Bad request",
    401: "Not signed in",
    403: "Missing scope or role",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    503: "A dependency is unavailable",
}


def openapi_path(route: str) -> tuple[str, list[dict[str, Any]]]:
    """``models/{name}/versions/{version:int}`` -> ``/models/{name}/versions/{version}``."""
    params: list[dict[str, Any]] = []

    def replace(m: re.Match[str]) -> str:
        name, constraint = m.group(2), m.group(3)
        # The route guard takes 1-9 digits (shared.http.endpoint.check_route_params).
        schema = (
            {"type": "integer", "minimum": 0, "maximum": 999_999_999}
            if constraint in ("int", "long")
            else {"type": "string"}
        )
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    # A parameter that can only be empty ("{page:maxlength(0)?}") is how "/" is routed.
    route = _EMPTY_ONLY.sub("", route)
    return "/" + _PARAM.sub(replace, route), params


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in schema.get("properties", {}).items()
    ]


_TEXT_BODY = {"type": "string", "description": "CSV: a header row of column names, then rows."}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _security(op: Operation) -> list[dict[str, list[str]]]:
    if op.auth == PUBLIC:
        return []
    scopes = [] if op.auth in (SIGNED_IN, ADMIN) else [op.auth]
    if not op.accepts_api_keys:
        return [{"bearer": scopes}, {"oauth2": scopes}]
    return [{"bearer": scopes}, {"apiKey": scopes}, {"oauth2": scopes}]


def _operation(op: Operation, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.function_name,
        "summary": op.summary,
        "tags": [op.tag],
        "security": _security(op),
    }
    if op.auth not in (PUBLIC, SIGNED_IN):
        need = "the admin role" if op.auth == ADMIN else f"scope `{op.auth}`"
        doc["description"] = f"Requires {need}."
    params = list(path_params) + (_query_params(op.query) if op.query else [])
    if params:
        doc["parameters"] = params
    if op.body is not None or op.body_schema is not None:
        schema = _ref(op.body) if op.body is not None else op.body_schema
        doc["requestBody"] = {
            "required": True,
            # Beside a body model, a text type (a CSV body) is a string; the JSON and form
            # types share the model. A body_schema already covers every type it lists.
            "content": {
                ct: {"schema": _TEXT_BODY if op.body and ct.startswith("text/") else schema}
                for ct in op.body_content_types
            },
        }
    ok: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        ok["content"] = {op.response_content_type: {"schema": _ref(op.response)}}
    elif op.response_content_types:  # a file in one of several formats
        binary = {"type": "string", "format": "binary"}
        ok["content"] = {ct: {"schema": binary} for ct in op.response_content_types}
    elif op.response_content_type != "application/json":
        ok["content"] = {op.response_content_type: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {str(op.status): ok}
    for status, model in op.also:
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Success"),
            "content": {"application/json": {"schema": _ref(model)}},
        }
    codes = set(op.errors) | {503}
    if op.rate_group is not None:
        codes.add(429)
        ok["headers"] = {
            "RateLimit-Policy": {"schema": {"type": "string"}, "description": "quota, window"},
            "RateLimit": {"schema": {"type": "string"}, "description": "remaining, reset"},
        }
    if op.auth != PUBLIC:
        codes |= {401, 403}
    if op.body is not None or op.query is not None:
        codes |= {422}
    if "{" in op.route:  # every path parameter is checked (422), and may name nothing (404)
        codes |= {404, 422}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _STATUS_TEXT.get(code, "Error"),
            "content": {
                "application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}
            },
        }
    doc["responses"] = responses
    return doc


def build_openapi(version: str, operations: list[Operation] | None = None) -> dict[str, Any]:
    operations = OPERATIONS if operations is None else operations
    models = {m for op in operations for m in (op.body, op.response) if m is not None}
    models |= {m for op in operations for _, m in op.also}
    _, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(operations, key=lambda o: (o.route, o.method)):
        path, params = openapi_path(op.route)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, params)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ML platform",
            "version": version,
            "description": (
                "Train, register and serve models. Sign in with `POST /auth/jwt/login` "
                "(or an `X-API-Key`), then call the routes your scopes allow."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "oauth2": {
                    "type": "oauth2",
                    "flows": {"password": {"tokenUrl": "/auth/jwt/login", "scopes": {}}},
                },
            },
        },
    }
