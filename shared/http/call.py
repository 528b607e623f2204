"""What one HTTP request is to a handler (``Call``) and what a route declares (``Operation``)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl

import azure.functions as func
from pydantic import BaseModel, ValidationError

from shared.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from shared.http.guard import api_keys_allowed
from shared.identity.principal import Principal, Requirement

if TYPE_CHECKING:
    from shared.container import Services
    from shared.settings import Settings

M = TypeVar("M", bound=BaseModel)
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


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
    services: Services
    principal: Principal | None = None
    audit_detail: dict[str, Any] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route declared auth=public but needs a principal"
        return self.principal

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def path(self) -> str:
        return path_of(self.req)

    def param(self, name: str) -> str:
        return self.req.route_params.get(name, "")

    def _limited_body(self, limit: int | None = None) -> bytes:
        body = self.req.get_body() or b""
        limit = limit or self.settings.max_request_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        return body

    @property
    def content_type(self) -> str:
        """The body's media type, lower case, without its parameters ("" when absent)."""
        return (self.req.headers.get("content-type") or "").split(";")[0].strip().lower()

    def json_bytes(self, limit: int | None = None) -> bytes:
        """The raw JSON body, size and content type checked (for a route's own decoder)."""
        body = self._limited_body(limit)
        ctype = self.content_type
        if ctype and ctype != "application/json" and not ctype.endswith("+json"):
            raise UnsupportedMediaType("Send the body as application/json.")
        return body

    def text_bytes(self, media_type: str, limit: int | None = None) -> bytes:
        """The raw body of a text type (``text/csv``), size checked; UTF-8 is the only
        charset read (415 for another)."""
        from email.message import Message  # the standard library's header parameters

        header = Message()
        header["content-type"] = self.req.headers.get("content-type") or ""
        charset = header.get_content_charset("utf-8")
        if self.content_type != media_type or charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"Send the body as {media_type} in UTF-8.")
        return self._limited_body(limit)

    def json(self, model: type[M], *, allow_empty: bool = False, limit: int | None = None) -> M:
        body = self.json_bytes(limit)
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
    # Other success answers, e.g. (200, NothingToDo) beside a 202: (status, body model).
    also: tuple[tuple[int, type[BaseModel]], ...] = ()
    errors: tuple[int, ...] = ()
    audited: bool = True  # False for high-volume reads/predictions: counted in metrics
    rate_group: str | None = None  # a group of shared/ratelimit.py: limited per key/user
    allow_api_keys: bool | None = None  # None: closed on SIGNED_IN (account) routes

    @property
    def accepts_api_keys(self) -> bool:
        return api_keys_allowed(self.auth, self.allow_api_keys)


OPERATIONS: list[Operation] = []


def path_of(req: func.HttpRequest) -> str:
    url = req.url or ""
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return path.split("?", 1)[0]
