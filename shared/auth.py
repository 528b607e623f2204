"""The authorization guard every route goes through (closed by default).

A route declares its requirement: ``PUBLIC``, ``SIGNED_IN``, ``ADMIN`` or a scope such
as ``"models:read"``. Credentials are a bearer token (``Authorization: Bearer``) or an
API key (``X-API-Key``); either becomes a :class:`Principal` with scopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import azure.functions as func

from shared.errors import Forbidden, Unauthorized

Requirement = str
PUBLIC: Requirement = "public"
SIGNED_IN: Requirement = "signed_in"
ADMIN: Requirement = "admin"
ALL_SCOPES = "*"

# Scopes used by the areas of the platform; roles are named sets of these.
KNOWN_SCOPES = (
    "models:read",
    "models:write",
    "train",
    "predict",
    "users:admin",
    "audit:read",
    "metrics:read",
)
# Reading a dataset's rows, by any route (the datasets API, evaluation, drift), needs this.
DATASET_SCOPE = "train"


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    scopes: frozenset[str]
    roles: tuple[str, ...] = ()
    kind: str = "user"  # "user" (bearer token) or "api_key"
    token_id: str | None = None  # jti of the bearer token, or the API key id
    token_expires_at: int | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_admin(self) -> bool:
        return ALL_SCOPES in self.scopes

    def has(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes


def credentials_of(req: func.HttpRequest) -> tuple[str, str] | None:
    """("bearer", token) or ("api_key", key), or None when the request carries neither."""
    api_key = req.headers.get("x-api-key")
    if api_key:
        return "api_key", api_key.strip()
    header = req.headers.get("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "bearer", value.strip()
    return None


def authenticate(req: func.HttpRequest, requirement: Requirement) -> Principal | None:
    """The caller's principal; None on public routes. 401 without valid credentials."""
    if requirement == PUBLIC:
        return None
    creds = credentials_of(req)
    if creds is None:
        raise Unauthorized("Sign in: send a bearer token or an X-API-Key.")
    from shared.services import authenticator  # late: the guard must not build services at import

    return authenticator().authenticate(*creds)


def require(principal: Principal | None, requirement: Requirement) -> None:
    """403 unless the principal meets the requirement."""
    if requirement in (PUBLIC, SIGNED_IN) or principal is None:
        return
    if requirement == ADMIN:
        if not principal.is_admin:
            raise Forbidden("This route needs the admin role.", code="ADMIN_REQUIRED")
    elif not principal.has(requirement):
        raise Forbidden(
            f"Missing scope '{requirement}'.",
            code="MISSING_SCOPE",
            extra={"missing_scope": requirement},
        )


def api_keys_allowed(requirement: Requirement, allow_api_keys: bool | None) -> bool:
    """Whether a route takes API keys. Routes that only need a sign-in manage the
    caller's own account (keys, profile, password, own audit, logout), so they are
    closed to keys unless they opt in; a key is for machine work within its scopes."""
    if allow_api_keys is not None:
        return allow_api_keys
    return requirement != SIGNED_IN


def refuse_api_key(principal: Principal | None, allowed: bool) -> None:
    """403 when an API key calls a route meant for the person (a key cannot mint keys)."""
    if principal is not None and principal.kind == "api_key" and not allowed:
        raise Forbidden(
            "API keys cannot manage the account; sign in with a password.",
            code="API_KEY_NOT_ALLOWED",
        )


def authorize(req: func.HttpRequest, requirement: Requirement) -> Principal | None:
    principal = authenticate(req, requirement)
    require(principal, requirement)
    return principal
