"""GET /openapi.json and GET /docs (Swagger UI served from the package: no CDN)."""

import importlib.util
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from shared.errors import NotFound
from shared.http import Call, Routes, json_response
from shared.http.openapi import build_openapi
from shared.identity.principal import PUBLIC

bp = func.Blueprint()
routes = Routes(bp, tag="docs")

_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-32x32.png": "image/png",
    "init.js": "application/javascript",
}
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ML platform API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script></body></html>
"""
_INIT = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout", persistAuthorization: false
});
"""
# Scripts only from this origin: the page works offline and injects nothing inline.
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'"


def _static_dir() -> Path:
    # Located without importing swagger_ui (its __init__ pulls jinja2 for other frameworks).
    spec = importlib.util.find_spec("swagger_ui")
    assert spec and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@lru_cache(maxsize=len(_ASSETS))
def _asset(name: str) -> bytes:
    if name == "init.js":
        return _INIT.encode()
    return (_static_dir() / name).read_bytes()


@lru_cache(maxsize=1)
def _document(version: str) -> dict:
    return build_openapi(version)


@routes.get("openapi.json", auth=PUBLIC, audited=False)
def openapi(call: Call) -> func.HttpResponse:
    """The OpenAPI 3.1 document of every route."""
    return json_response(_document(call.settings.git_metadata))


@routes.get("docs", auth=PUBLIC, response_content_type="text/html", audited=False)
def docs(call: Call) -> func.HttpResponse:
    """Interactive API documentation (Swagger UI)."""
    return func.HttpResponse(
        _PAGE, mimetype="text/html", charset="utf-8", headers={"Content-Security-Policy": _CSP}
    )


@routes.get(
    "docs/{asset}", auth=PUBLIC, response_content_type="application/octet-stream", audited=False
)
def docs_asset(call: Call) -> func.HttpResponse:
    """Swagger UI's static files."""
    name = call.param("asset")
    if name not in _ASSETS:  # an allow-list: no path from the URL ever reaches the disk
        raise NotFound("No such documentation asset.")
    return func.HttpResponse(
        _asset(name), mimetype=_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"}
    )
