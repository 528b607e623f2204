"""The one wrapper every HTTP handler goes through.

``Routes(bp).post("train", auth="train", body=TrainRequest, ...)`` registers the
handler with the Functions blueprint *and* records it for the OpenAPI document, so
the docs cannot drift from the routes. The wrapper assigns the request id, runs the
authorization guard (an ``auth`` requirement is mandatory: closed by default),
turns every error into problem+json, writes the audit record and logs one line.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import azure.functions as func
from azure.core.exceptions import AzureError, HttpResponseError
from pydantic import BaseModel, ValidationError

from shared import audit, metrics, telemetry
from shared.auth import (
    Principal,
    Requirement,
    api_keys_allowed,
    authenticate,
    refuse_api_key,
    require,
)
from shared.errors import (
    AppError,
    Conflict,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    UnsupportedMediaType,
    ValidationFailed,
)
from shared.http.responses import problem_response
from shared.observability import get_logger, request_id_var
from shared.settings import get_settings
from shared.storage_deadline import storage_deadline

M = TypeVar("M", bound=BaseModel)
Handler = Callable[["Call"], func.HttpResponse]

log = get_logger("http")
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Every route parameter, before any handler or storage sees it: names, ids, aliases and
# versions of this platform all fit here; anything else cannot name a resource (404).
_SAFE_PARAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~:@-]{0,127}$")
_INT_PARAM = re.compile(r"^[0-9]{1,9}$")
_INT_IN_ROUTE = re.compile(r"{(\w+):int}")
_CATCH_ALL_IN_ROUTE = re.compile(r"{\*(\w+)}")
_OPTIONAL_IN_ROUTE = re.compile(r"{(\w+)(?::[^}]*)?\?}")


def request_id_for(req: func.HttpRequest) -> str:
    """Echo the caller's X-Request-ID when it is sane, else make one."""
    given = req.headers.get("x-request-id")
    if given and _SAFE_REQUEST_ID.match(given):
        return given
    return uuid.uuid4().hex


@dataclass
class Call:
    """What a handler gets: the request, its id, the authenticated principal."""

    req: func.HttpRequest
    request_id: str
    principal: Principal | None = None
    audit_detail: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route declared auth=public but needs a principal"
        return self.principal

    @property
    def path(self) -> str:
        return path_of(self.req)

    def param(self, name: str) -> str:
        return self.req.route_params.get(name, "")

    def _limited_body(self, limit: int | None = None) -> bytes:
        body = self.req.get_body() or b""
        limit = limit or get_settings().max_request_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        return body

    def json(self, model: type[M], *, allow_empty: bool = False, limit: int | None = None) -> M:
        body = self._limited_body(limit)
        ctype = (self.req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise UnsupportedMediaType("Send the body as application/json.")
        if not body.strip():
            if allow_empty:
                return model()
            raise ValidationFailed("A JSON body is required.")
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, "The body is not valid.") from None

    def form_or_json(self, model: type[M]) -> M:
        """OAuth2-style endpoints accept a urlencoded form (ADF) or JSON."""
        ctype = (self.req.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            body = self._limited_body()
            try:
                fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                raise ValidationFailed("The form is not valid UTF-8.") from None
            try:
                return model.model_validate(fields)
            except ValidationError as exc:
                raise ValidationFailed.from_pydantic(exc, "The form is not valid.") from None
        return self.json(model)

    def query(self, model: type[M]) -> M:
        try:
            return model.model_validate(dict(self.req.params))
        except ValidationError as exc:
            raise ValidationFailed.from_pydantic(exc, "The query string is not valid.") from None


@dataclass(frozen=True)
class Operation:
    """One HTTP operation, as the OpenAPI document describes it."""

    route: str
    method: str
    function_name: str
    summary: str
    tag: str
    auth: Requirement
    status: int = 200
    body: type[BaseModel] | None = None
    body_content_types: tuple[str, ...] = ("application/json",)
    body_schema: dict[str, Any] | None = None
    response: type[BaseModel] | None = None
    response_content_type: str = "application/json"
    response_content_types: tuple[str, ...] = ()  # a file route answering several formats
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    audited: bool = True  # False for high-volume reads/predictions: counted in metrics
    allow_api_keys: bool | None = None  # None: closed on SIGNED_IN (account) routes

    @property
    def accepts_api_keys(self) -> bool:
        return api_keys_allowed(self.auth, self.allow_api_keys)

    rate_group: str | None = None  # a group of shared/ratelimit.py: limited per key/user


OPERATIONS: list[Operation] = []


def _problem_for(exc: Exception) -> AppError:
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, ValidationError):
        return ValidationFailed.from_pydantic(exc)
    if isinstance(exc, HttpResponseError) and exc.status_code in (409, 412):
        # Two writers met on a row a service did not expect to be contended: retryable.
        return Conflict("A concurrent change got there first; retry.", code="CONCURRENT_UPDATE")
    if isinstance(exc, AzureError):
        # Any other storage refusal (a 404 of a container an emulator restart dropped, an
        # InvalidBlockList after storage died mid-upload, a 5xx, no answer) is storage's
        # state, not the caller's input: retryable, never a 500.
        return ServiceUnavailable(
            "Storage is unavailable or refused the operation; retry.", dependency="storage"
        )
    return AppError("An unexpected error occurred; it has been logged.")


def check_route_params(req: func.HttpRequest, op: Operation) -> None:
    """422 for a route parameter no resource can have: traversal (``..%2f``), control
    characters, odd unicode, overlong values, integers beyond nine digits (as the
    handlers' own name checks answer)."""
    ints = set(_INT_IN_ROUTE.findall(op.route))
    catch_all = set(_CATCH_ALL_IN_ROUTE.findall(op.route))
    optional = set(_OPTIONAL_IN_ROUTE.findall(op.route))
    for key, value in (req.route_params or {}).items():
        if not value and key in optional:
            continue  # an optional parameter left out (the dashboard's "/")
        if key in catch_all:  # "{*path}": a relative path, each segment a safe name
            if ".." not in value and all(_SAFE_PARAM.fullmatch(s) for s in value.split("/")):
                continue
            raise NotFound(f"No resource at this {key}.", code="NOT_FOUND")
        pattern = _INT_PARAM if key in ints else _SAFE_PARAM
        if not pattern.fullmatch(value or "") or ".." in value:
            if any(sep in value.lower() for sep in ("/", "\\", "%2f", "%5c")):
                # an encoded path: no resource lives there
                raise NotFound(f"No resource at this {key}.", code="NOT_FOUND")
            raise ValidationFailed(
                f"Invalid {key} in the path: {value[:40]!r}.",
                [{"loc": ["path", key], "msg": "not a valid identifier", "type": "path"}],
                code="INVALID_PATH_PARAMETER",
            )


def handle(req: func.HttpRequest, handler: Handler, op: Operation) -> func.HttpResponse:
    """Run one request through request id, guard, handler, error mapping and audit."""
    started = time.perf_counter()
    request_id = request_id_for(req)
    token = request_id_var.set(request_id)
    span = telemetry.start_request_span(op.route, req.method, request_id)
    call = Call(req=req, request_id=request_id)
    status = 500
    limit_headers: dict[str, str] = {}
    try:
        # Every storage operation of the request, the audit write included, is bounded.
        with storage_deadline(get_settings().storage_http_deadline_seconds):
            try:
                call.principal = authenticate(req, op.auth)
                refuse_api_key(call.principal, op.accepts_api_keys)
                require(call.principal, op.auth)
                check_route_params(req, op)
                if op.rate_group is not None and call.principal is not None:
                    limit_headers = _rate_limit(op.rate_group, call.principal)
                response = handler(call)
            except Exception as exc:
                problem = _problem_for(exc)
                if problem.status >= 500:
                    log.error(
                        "request failed",
                        exc_info=exc,
                        extra={"route": op.route, "method": req.method, "code": problem.code},
                    )
                response = problem_response(problem, request_id, instance=path_of(req))
            response.headers["X-Request-ID"] = request_id
            for name, value in limit_headers.items():
                response.headers[name] = value
            elapsed_ms = (time.perf_counter() - started) * 1000
            status = response.status_code
            metrics.observe_request(op.route, req.method, status, elapsed_ms / 1000)
            audit.after_request(call, op, response.status_code, elapsed_ms)
        log.info(
            "%s %s %s",
            req.method,
            op.route,
            response.status_code,
            extra={"status": response.status_code, "ms": round(elapsed_ms, 2)},
        )
        return response
    finally:
        telemetry.end_request_span(span, status)
        request_id_var.reset(token)


def _rate_limit(group: str, principal: Principal) -> dict[str, str]:
    """The RateLimit headers of this request's budget; 429 when it is spent."""
    from shared import services
    from shared.ratelimit import over_limit, subject_of

    decision = services.rate_limiter().check(group, subject_of(principal))
    if decision is None:
        return {}
    if not decision.allowed:
        raise over_limit(decision)
    return decision.headers()


def path_of(req: func.HttpRequest) -> str:
    url = req.url or ""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return path.split("?", 1)[0]


class Routes:
    """Registers handlers on a Functions blueprint and in the OpenAPI registry."""

    def __init__(self, blueprint: func.Blueprint, tag: str) -> None:
        self.bp = blueprint
        self.tag = tag

    def route(
        self,
        method: str,
        route: str,
        *,
        auth: Requirement,
        name: str | None = None,
        **doc: Any,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            fname = name or handler.__name__
            op = Operation(
                route=route,
                method=method,
                function_name=fname,
                summary=doc.pop("summary", None)
                or (handler.__doc__ or fname).strip().split("\n")[0],
                tag=self.tag,
                auth=auth,
                **doc,
            )
            OPERATIONS.append(op)

            # The Functions worker binds parameters by name and annotation, so the
            # registered callable must literally be ``(req: HttpRequest) -> HttpResponse``.
            def entry(req: func.HttpRequest) -> func.HttpResponse:
                return handle(req, handler, op)

            entry.__name__ = entry.__qualname__ = fname
            entry.__doc__ = handler.__doc__
            self.bp.function_name(fname)(
                self.bp.route(route=route, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(
                    entry
                )
            )
            return handler

        return register

    def get(self, route: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", route, **kw)

    def post(self, route: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", route, **kw)

    def put(self, route: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", route, **kw)

    def patch(self, route: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", route, **kw)

    def delete(self, route: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", route, **kw)
