"""The authorization guard every route goes through (closed by default).

It takes the authenticator as an argument (a factory, so public routes and requests
without credentials never build it): the guard never looks services up itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import azure.functions as func

from shared.errors import Forbidden, Unauthorized
from shared.identity.principal import ADMIN, PUBLIC, SIGNED_IN, Principal, Requirement

if TYPE_CHECKING:
    from shared.identity.authenticator import Authenticator


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


def authenticate(
    req: func.HttpRequest, requirement: Requirement, authenticator: Callable[[], Authenticator]
) -> Principal | None:
    """The caller's principal; None on public routes. 401 without valid credentials."""
    if requirement == PUBLIC:
        return None
    creds = credentials_of(req)
    if creds is None:
        raise Unauthorized("Sign in: send a bearer token or an X-API-Key.")
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


def authorize(
    req: func.HttpRequest, requirement: Requirement, authenticator: Callable[[], Authenticator]
) -> Principal | None:
    principal = authenticate(req, requirement, authenticator)
    require(principal, requirement)
    return principal
