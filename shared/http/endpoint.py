"""The one wrapper every HTTP handler goes through.

``Routes(bp).post("train", auth="train", body=TrainRequest, ...)`` registers the
handler with the Functions blueprint *and* records it for the OpenAPI document, so
the docs cannot drift from the routes. The wrapper assigns the request id, runs the
authorization guard (an ``auth`` requirement is mandatory: closed by default),
turns every error into problem+json, writes the audit record and logs one line.

Handlers reach the services through ``call.services``: the one container that
``function_app`` built and handed over with :func:`use_services`. Queue and timer
handlers registered with :meth:`Routes.queue` / :meth:`Routes.timer` get it as their
first argument.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import azure.functions as func
from azure.core.exceptions import AzureError, HttpResponseError
from pydantic import ValidationError

from shared import metrics, telemetry
from shared.errors import (
    AppError,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.http.audit_hook import after_request
from shared.http.call import OPERATIONS, Call, Operation, path_of, request_id_for
from shared.http.guard import authenticate, refuse_api_key, require
from shared.http.responses import problem_response
from shared.identity.principal import Principal, Requirement
from shared.observability import get_logger, request_id_var
from shared.storage_deadline import storage_deadline

if TYPE_CHECKING:
    from shared.container import Services

Handler = Callable[["Call"], func.HttpResponse]

log = get_logger("http")
_services: Services | None = None
# Every route parameter, before any handler or storage sees it: names, ids, aliases and
# versions of this platform all fit here; anything else cannot name a resource (404).
_SAFE_PARAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~:@-]{0,127}$")
_INT_PARAM = re.compile(r"^[0-9]{1,9}$")
_INT_IN_ROUTE = re.compile(r"{(\w+):int}")
_CATCH_ALL_IN_ROUTE = re.compile(r"{\*(\w+)}")
_OPTIONAL_IN_ROUTE = re.compile(r"{(\w+)(?::[^}]*)?\?}")


def use_services(services: Services | None) -> Services | None:
    """Hand the app's container to the edge (once, at start-up); returns the previous one."""
    global _services
    previous, _services = _services, services
    return previous


def current_services() -> Services:
    if _services is None:
        raise RuntimeError("No service container: function_app must call use_services() first.")
    return _services


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


def handle(
    req: func.HttpRequest, handler: Handler, op: Operation, services: Services
) -> func.HttpResponse:
    """Run one request through request id, guard, handler, error mapping and audit."""
    started = time.perf_counter()
    request_id = request_id_for(req)
    token = request_id_var.set(request_id)
    span = telemetry.start_request_span(op.route, req.method, request_id)
    call = Call(req=req, request_id=request_id, services=services)
    status = 500
    limit_headers: dict[str, str] = {}
    try:
        # Every storage operation of the request, the audit write included, is bounded.
        with storage_deadline(services.settings.storage_http_deadline_seconds):
            try:
                call.principal = authenticate(req, op.auth, lambda: services.authenticator)
                refuse_api_key(call.principal, op.accepts_api_keys)
                require(call.principal, op.auth)
                check_route_params(req, op)
                if op.rate_group is not None and call.principal is not None:
                    limit_headers = _rate_limit(services, op.rate_group, call.principal)
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
            after_request(call, op, response.status_code, elapsed_ms, lambda: services.audit_log)
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


def _rate_limit(services: Services, group: str, principal: Principal) -> dict[str, str]:
    """The RateLimit headers of this request's budget; 429 when it is spent."""
    from shared.ratelimit import over_limit, subject_of

    decision = services.rate_limiter.check(group, subject_of(principal))
    if decision is None:
        return {}
    if not decision.allowed:
        raise over_limit(decision)
    return decision.headers()


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
                return handle(req, handler, op, current_services())

            entry.__name__ = entry.__qualname__ = fname
            entry.__doc__ = handler.__doc__
            self.bp.function_name(fname)(
                self.bp.route(route=route, methods=[method], auth_level=func.AuthLevel.ANONYMOUS)(
                    entry
                )
            )
            return handler

        return register

    def queue(
        self, name: str, queue: str
    ) -> Callable[[Callable[[Services, func.QueueMessage], None]], Callable[..., None]]:
        """Register a queue trigger on ``queue``; the handler gets (services, message)."""

        def register(handler: Callable[[Services, func.QueueMessage], None]) -> Callable[..., None]:
            def entry(msg: func.QueueMessage) -> None:
                services = current_services()
                # Queue work may wait longer on storage than a request, but not forever.
                with storage_deadline(services.settings.storage_worker_deadline_seconds):
                    handler(services, msg)

            entry.__name__ = entry.__qualname__ = name
            entry.__doc__ = handler.__doc__
            self.bp.function_name(name)(
                self.bp.queue_trigger(
                    arg_name="msg", queue_name=queue, connection="AzureWebJobsStorage"
                )(entry)
            )
            return handler

        return register

    def timer(
        self, name: str, schedule: str
    ) -> Callable[[Callable[[Services, func.TimerRequest], None]], Callable[..., None]]:
        """Register a timer trigger (NCRONTAB ``schedule``); the handler gets (services, timer)."""

        def register(handler: Callable[[Services, func.TimerRequest], None]) -> Callable[..., None]:
            def entry(timer: func.TimerRequest) -> None:
                services = current_services()
                with storage_deadline(services.settings.storage_worker_deadline_seconds):
                    handler(services, timer)

            entry.__name__ = entry.__qualname__ = name
            entry.__doc__ = handler.__doc__
            self.bp.function_name(name)(
                self.bp.timer_trigger(
                    arg_name="timer", schedule=schedule, run_on_startup=False, use_monitor=True
                )(entry)
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
