"""The dashboard: GET / (static page + assets), GET /plots_structure, the plots themselves.

The page is public (it holds no data); everything it shows comes from the API with the
bearer token the user gets from POST /auth/jwt/login, kept in page memory only.
"""

import azure.functions as func
from pydantic import BaseModel

from shared.dashboard.assets import ASSETS, PAGE, SECURITY_HEADERS, read_static
from shared.dashboard.plots import PlotsQuery, PlotTree
from shared.errors import NotFound
from shared.http import Call, Routes, json_response
from shared.identity.principal import PUBLIC, SIGNED_IN

bp = func.Blueprint()
routes = Routes(bp, tag="dashboard")

# "/" itself: an optional parameter that can only be empty. A route of "" would be
# replaced by the function's name; with routePrefix "" this one answers the site root
# (the host's own home page is turned off by AzureWebJobsDisableHomepage).
ROOT_ROUTE = "{page:maxlength(0)?}"


class Session(BaseModel):
    username: str
    roles: list[str]
    scopes: list[str]
    is_admin: bool


@routes.get(ROOT_ROUTE, auth=PUBLIC, response_content_type="text/html", audited=False)
def dashboard(call: Call) -> func.HttpResponse:
    """The dashboard (sign in inside)."""
    return func.HttpResponse(
        read_static(PAGE),
        mimetype="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@routes.get(
    "dashboard/{asset}",
    auth=PUBLIC,
    response_content_type="application/octet-stream",
    errors=(404,),
    audited=False,
)
def dashboard_asset(call: Call) -> func.HttpResponse:
    """The dashboard's scripts and styles."""
    name = call.param("asset")
    if name not in ASSETS:  # an allow-list: no path from the URL ever reaches the disk
        raise NotFound("No such dashboard asset.")
    return func.HttpResponse(
        read_static(name),
        mimetype=ASSETS[name],
        charset="utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@routes.get("dashboard/session", auth=SIGNED_IN, response=Session, audited=False)
def session(call: Call) -> func.HttpResponse:
    """Who is signed in and what they may do (the page shows only the actions allowed)."""
    user = call.user
    return json_response(
        Session(
            username=user.username,
            roles=list(user.roles),
            scopes=sorted(user.scopes),
            is_admin=user.is_admin,
        )
    )


@routes.get(
    "plots_structure",
    auth="models:read",
    query=PlotsQuery,
    response=PlotTree,
    errors=(404,),
    audited=False,
)
def plots_structure(call: Call) -> func.HttpResponse:
    """The plots of each model, version and partition, with their URLs."""
    return json_response(call.services.plot_catalog.tree(call.query(PlotsQuery)))


@routes.get(
    "models/{name}/versions/{version:int}/plots/{*path}",
    auth="models:read",
    response_content_type="image/png",
    errors=(404, 409),
    audited=False,
)
def get_plot(call: Call) -> func.HttpResponse:
    """One plot of a version (or of a partition: .../plots/{partition key}/{plot}.png)."""
    data = call.services.plot_catalog.read(
        call.param("name"), int(call.param("version")), call.param("path")
    )
    return func.HttpResponse(
        data,
        mimetype="image/png",
        headers={
            "Cache-Control": "private, max-age=3600",  # a version's files never change
            "X-Content-Type-Options": "nosniff",
        },
    )
