"""Typed application errors; the HTTP edge turns them into RFC 9457 problem+json.

Services raise these and never build HTTP responses. ``code`` is the stable,
machine-readable part clients (ADF, SDKs) branch on; ``detail`` is for humans.
"""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE_BASE = "https://ml-platform.dev/problems/"


class AppError(Exception):
    status: int = 500
    code: str = "INTERNAL_ERROR"
    title: str = "Internal error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.code.lower().replace("_", "-")


class BadRequest(AppError):
    status, code, title = 400, "BAD_REQUEST", "Bad request"


class Unauthorized(AppError):
    status, code, title = 401, "UNAUTHORIZED", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="ml-platform"')


class Forbidden(AppError):
    status, code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(AppError):
    status, code, title = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class Conflict(AppError):
    status, code, title = 409, "CONFLICT", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Payload too large"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class ValidationFailed(AppError):
    status, code, title = 422, "VALIDATION_FAILED", "Validation failed"

    def __init__(
        self,
        detail: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        *,
        code: str | None = None,
    ):
        super().__init__(detail, code=code, extra={"errors": errors or []})

    @classmethod
    def from_pydantic(cls, exc: Any, detail: str = "The data is not valid.") -> ValidationFailed:
        """Field errors without the offending input (it may be a password)."""
        errors = [
            {
                "loc": [p if isinstance(p, int) else str(p) for p in e["loc"]],
                "msg": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        return cls(detail, errors)


class TooManyRequests(AppError):
    status, code, title = 429, "TOO_MANY_REQUESTS", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers["Retry-After"] = str(max(1, int(retry_after)))


class ServiceUnavailable(AppError):
    """A dependency (storage, Key Vault) failed; the operation changed nothing."""

    status, code, title = 503, "SERVICE_UNAVAILABLE", "Service unavailable"

    def __init__(self, detail: str | None = None, *, dependency: str | None = None, **kw: Any):
        super().__init__(detail, **kw)
        self.headers.setdefault("Retry-After", "5")
        if dependency:
            self.extra["dependency"] = dependency
