"""JSON and problem+json responses."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from pydantic import BaseModel

from shared.errors import AppError

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


def _dump(body: Any) -> bytes:
    if isinstance(body, BaseModel):
        return body.model_dump_json(by_alias=True).encode()
    return json.dumps(body, default=_default, separators=(",", ":")).encode()


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        body=_dump(body), status_code=status, headers=headers or {}, mimetype=JSON, charset="utf-8"
    )


def encoded_json_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    """A JSON body the route encoded itself (e.g. with orjson, from numpy arrays)."""
    return func.HttpResponse(
        body=body, status_code=status, headers=headers or {}, mimetype=JSON, charset="utf-8"
    )


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(status_code=status, headers=headers or {})


def problem_body(error: AppError, request_id: str | None, instance: str | None = None) -> dict:
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "request_id": request_id,
    }
    if instance:
        body["instance"] = instance
    body.update(error.extra)
    return body


def problem_response(
    error: AppError, request_id: str | None, instance: str | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        body=json.dumps(problem_body(error, request_id, instance), default=str).encode(),
        status_code=error.status,
        headers=dict(error.headers),
        mimetype=PROBLEM_JSON,
        charset="utf-8",
    )
