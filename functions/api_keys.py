"""API keys for machine clients (ADF, applications): created once, sent as X-API-Key."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.identity.principal import SIGNED_IN
from shared.identity.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyPage
from shared.pages import PageQuery

bp = func.Blueprint()
routes = Routes(bp, tag="api-keys")


@routes.post(
    "api-keys",
    auth=SIGNED_IN,
    body=ApiKeyCreate,
    response=ApiKeyCreated,
    status=201,
    errors=(403,),
)
def create_api_key(call: Call) -> func.HttpResponse:
    """Create a key with a subset of your scopes; the secret is in this answer only."""
    key = call.services.accounts.create_api_key(call.user, call.json(ApiKeyCreate))
    return json_response(key, status=201, headers={"Cache-Control": "no-store"})


@routes.get("api-keys", auth=SIGNED_IN, query=PageQuery, response=ApiKeyPage, audited=False)
def list_api_keys(call: Call) -> func.HttpResponse:
    """Your keys (an admin sees every key); never the secrets."""
    q = call.query(PageQuery)
    keys, token = call.services.accounts.list_api_keys(call.user, q.limit, q.continuation_token)
    return json_response(ApiKeyPage(items=keys, continuation_token=token))


@routes.delete("api-keys/{id}", auth=SIGNED_IN, status=204, errors=(404,))
def delete_api_key(call: Call) -> func.HttpResponse:
    """Revoke a key at once."""
    call.services.accounts.delete_api_key(call.user, call.param("id"))
    return empty_response(204)
