"""Problem+json mapping and request ids, through the real endpoint wrapper."""

import json

import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from pydantic import BaseModel

from shared.container import Services
from shared.errors import Conflict, NotFound, TooManyRequests
from shared.http.endpoint import Call, Operation, handle, request_id_for
from shared.identity.principal import PUBLIC
from shared.settings import Settings

OP = Operation(
    route="things/{id}",
    method="POST",
    function_name="t",
    summary="",
    tag="t",
    auth=PUBLIC,
    audited=False,
)


# A container from test settings: nothing in it is built unless a handler asks.
SERVICES = Services(Settings())


class Thing(BaseModel):
    name: str
    size: int


def request(body: bytes = b"", headers: dict | None = None) -> func.HttpRequest:
    return func.HttpRequest(
        "POST",
        "http://localhost/things/1?x=1",
        headers=headers or {},
        body=body,
        route_params={"id": "1"},
    )


def run(handler, req: func.HttpRequest | None = None) -> tuple[func.HttpResponse, dict]:
    resp = handle(req or request(), handler, OP, SERVICES)
    body = json.loads(resp.get_body()) if resp.get_body() else {}
    return resp, body


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NotFound("no thing", code="THING_NOT_FOUND"), 404, "THING_NOT_FOUND"),
        (Conflict("taken"), 409, "CONFLICT"),
        (TooManyRequests("slow down", retry_after=7), 429, "TOO_MANY_REQUESTS"),
    ],
)
def test_app_errors_become_problem_json(error, status, code) -> None:
    def handler(call: Call) -> func.HttpResponse:
        raise error

    resp, body = run(handler)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["detail"] == error.detail
    assert body["type"].endswith(code.lower().replace("_", "-"))
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert body["instance"] == "/things/1"
    if status == 429:
        assert resp.headers["Retry-After"] == "7"


def test_unexpected_exception_is_a_500_without_stack_trace() -> None:
    def handler(call: Call) -> func.HttpResponse:
        raise KeyError("secret internal detail")

    resp, body = run(handler)
    assert resp.status_code == 500
    text = resp.get_body().decode()
    assert "Traceback" not in text and "secret internal detail" not in text
    assert body["code"] == "INTERNAL_ERROR"


@pytest.mark.parametrize(
    "exc", [ServiceRequestError("connection refused"), HttpResponseError(message="boom")]
)
def test_storage_faults_are_503(exc) -> None:
    def handler(call: Call) -> func.HttpResponse:
        raise exc

    resp, body = run(handler)
    assert resp.status_code == 503
    assert body["code"] == "SERVICE_UNAVAILABLE"
    assert body["dependency"] == "storage"
    assert "Retry-After" in resp.headers


def test_invalid_body_is_422_with_field_errors_and_no_echo() -> None:
    def handler(call: Call) -> func.HttpResponse:
        call.json(Thing)
        raise AssertionError("unreachable")

    resp, body = run(
        handler,
        request(b'{"name": "hunter2-secret", "size": "big"}', {"content-type": "application/json"}),
    )
    assert resp.status_code == 422
    assert body["errors"][0]["loc"] == ["size"]
    assert "hunter2-secret" not in resp.get_body().decode()


def test_wrong_content_type_is_415_and_malformed_json_422() -> None:
    def handler(call: Call) -> func.HttpResponse:
        call.json(Thing)
        raise AssertionError("unreachable")

    resp, _ = run(handler, request(b"name=x", {"content-type": "text/plain"}))
    assert resp.status_code == 415
    resp, _ = run(handler, request(b"{not json", {"content-type": "application/json"}))
    assert resp.status_code == 422


def test_request_id_is_echoed_or_generated() -> None:
    def handler(call: Call) -> func.HttpResponse:
        return func.HttpResponse(call.request_id)

    resp, _ = handle(request(headers={"x-request-id": "adf-run-42"}), handler, OP, SERVICES), None
    assert resp.headers["X-Request-ID"] == "adf-run-42"
    assert resp.get_body() == b"adf-run-42"
    generated = handle(request(), handler, OP, SERVICES).headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "adf-run-42"


def test_unsafe_request_ids_are_replaced() -> None:
    for bad in ("a" * 200, "x\r\nSet-Cookie: y", "<script>"):
        rid = request_id_for(request(headers={"x-request-id": bad}))
        assert rid != bad and len(rid) == 32


def test_unexpected_storage_conflicts_are_409() -> None:
    def handler(call: Call) -> func.HttpResponse:
        err = HttpResponseError(message="precondition failed")
        err.status_code = 412
        raise err

    resp, body = run(handler)
    assert resp.status_code == 409 and body["code"] == "CONCURRENT_UPDATE"
