"""Sign-in: POST /auth/jwt/login (ADF's form post or JSON), logout, register."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.http.audit_hook import client_address
from shared.http.guard import authorize, credentials_of
from shared.identity.principal import PUBLIC, SIGNED_IN
from shared.identity.schemas import LoginRequest, RegisterRequest, TokenResponse, UserView

bp = func.Blueprint()
routes = Routes(bp, tag="auth")


@routes.post(
    "auth/jwt/login",
    auth=PUBLIC,
    body=LoginRequest,
    body_content_types=("application/x-www-form-urlencoded", "application/json"),
    response=TokenResponse,
    errors=(400, 429),
)
def login(call: Call) -> func.HttpResponse:
    """Exchange a username and password for a bearer token (OAuth2 password grant)."""
    body = call.form_or_json(LoginRequest)
    token = call.services.accounts.login(body.username, body.password, client_address(call))
    # Only once the name is known to be an account: a failed login's "username" may be a
    # password typed into the wrong field, and is never stored.
    call.audit_detail["username"] = body.username[:64]
    return json_response(token, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@routes.post("auth/jwt/logout", auth=SIGNED_IN, status=204, errors=(400,))
def logout(call: Call) -> func.HttpResponse:
    """Revoke the bearer token this request carries, on every instance."""
    call.services.accounts.logout(call.user)
    return empty_response(204)


@routes.post(
    "auth/register",
    auth=PUBLIC,
    body=RegisterRequest,
    response=UserView,
    status=201,
    errors=(401, 403, 404, 409),
)
def register(call: Call) -> func.HttpResponse:
    """Create a user: admins only, unless ALLOW_SELF_REGISTRATION is on."""
    # Public route, so self-registration can work; an admin's credentials are still read.
    caller = (
        authorize(call.req, SIGNED_IN, lambda: call.services.authenticator)
        if credentials_of(call.req)
        else None
    )
    call.principal = caller
    user = call.services.accounts.register(call.json(RegisterRequest), caller)
    return json_response(user.view(), status=201, headers={"Location": f"/users/{user.id}"})
