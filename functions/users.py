"""Users: GET/PATCH /users/me, and the admin's /users and /users/{id}."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.identity.principal import ADMIN, SIGNED_IN
from shared.identity.schemas import MeUpdate, UserAdminUpdate, UserPage, UserView
from shared.pages import PageQuery

bp = func.Blueprint()
routes = Routes(bp, tag="users")


# Read-only "who am I" stays open to keys (machine clients check their identity);
# every other account route is closed to them (shared.http.guard.api_keys_allowed).
@routes.get("users/me", auth=SIGNED_IN, response=UserView, audited=False, allow_api_keys=True)
def get_me(call: Call) -> func.HttpResponse:
    """The signed-in user."""
    return json_response(call.services.accounts.get_user(call.user.user_id).view())


@routes.patch("users/me", auth=SIGNED_IN, body=MeUpdate, response=UserView, errors=(400, 409))
def update_me(call: Call) -> func.HttpResponse:
    """Change your email, or your password (with the current one). Roles are not yours to set."""
    user = call.services.accounts.update_me(call.user, call.json(MeUpdate))
    return json_response(user.view())


@routes.get("users", auth=ADMIN, query=PageQuery, response=UserPage, audited=False)
def list_users(call: Call) -> func.HttpResponse:
    """All users, a page at a time (pass continuation_token for the next page)."""
    q = call.query(PageQuery)
    users, token = call.services.accounts.list_users(q.limit, q.continuation_token)
    return json_response(UserPage(items=[u.view() for u in users], continuation_token=token))


@routes.get("users/{id}", auth=ADMIN, response=UserView, errors=(404,), audited=False)
def get_user(call: Call) -> func.HttpResponse:
    """One user."""
    return json_response(call.services.accounts.get_user(call.param("id")).view())


@routes.patch("users/{id}", auth=ADMIN, body=UserAdminUpdate, response=UserView, errors=(404, 409))
def update_user(call: Call) -> func.HttpResponse:
    """Change a user's email, password, roles or active flag."""
    user = call.services.accounts.update_user(
        call.user, call.param("id"), call.json(UserAdminUpdate)
    )
    return json_response(user.view())


@routes.delete("users/{id}", auth=ADMIN, status=204, errors=(404, 409))
def delete_user(call: Call) -> func.HttpResponse:
    """Delete a user; their tokens and API keys stop working."""
    call.services.accounts.delete_user(call.user, call.param("id"))
    return empty_response(204)


@routes.post("users/{id}/unlock", auth=ADMIN, status=204, errors=(404,))
def unlock_user(call: Call) -> func.HttpResponse:
    """Clear every sign-in lock of a user (per-client and account-wide)."""
    call.services.accounts.unlock(call.param("id"))
    return empty_response(204)
