"""Roles (admin): named sets of scopes; `admin` and `user` are built in."""

import azure.functions as func

from shared.http import Call, Routes, empty_response, json_response
from shared.identity.principal import ADMIN
from shared.identity.schemas import Role, RoleBody, RoleCreate, RoleList

bp = func.Blueprint()
routes = Routes(bp, tag="roles")


@routes.get("roles", auth=ADMIN, response=RoleList, audited=False)
def list_roles(call: Call) -> func.HttpResponse:
    """Every role with its scopes."""
    roles = call.services.roles.all(fresh=True)
    return json_response(RoleList(items=sorted(roles.values(), key=lambda r: r.name)))


@routes.post("roles", auth=ADMIN, body=RoleCreate, response=Role, status=201, errors=(409,))
def create_role(call: Call) -> func.HttpResponse:
    """Create a role."""
    role = call.services.roles.create(call.json(RoleCreate))
    return json_response(role, status=201, headers={"Location": f"/roles/{role.name}"})


@routes.get("roles/{name}", auth=ADMIN, response=Role, errors=(404,), audited=False)
def get_role(call: Call) -> func.HttpResponse:
    """One role."""
    return json_response(call.services.roles.get(call.param("name")))


@routes.put("roles/{name}", auth=ADMIN, body=RoleBody, response=Role, errors=(409,))
def put_role(call: Call) -> func.HttpResponse:
    """Create or replace a role (built-in roles are read-only)."""
    name = call.param("name")
    RoleCreate(name=name, scopes=["predict"])  # validates the name from the URL
    role, created = call.services.roles.put(name, call.json(RoleBody))
    return json_response(role, status=201 if created else 200)


@routes.delete("roles/{name}", auth=ADMIN, status=204, errors=(404, 409))
def delete_role(call: Call) -> func.HttpResponse:
    """Delete a role; users keep the name but it grants nothing."""
    name = call.param("name")
    call.services.roles.get(name)  # 404 for an unknown (or invalid) name, not a 204
    call.services.roles.delete(name)
    return empty_response(204)
