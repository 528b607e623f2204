"""Heartbeat, health, docs and OpenAPI over HTTP through the local host."""

import re

import httpx
import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/heartbeat", "/heartbeat/", "/HEARTBEAT"])
def test_heartbeat_is_anonymous_and_reports_the_version(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.json() == {"version": "local"}
    assert r.headers["x-request-id"]


def test_request_id_is_echoed(client: httpx.Client) -> None:
    r = client.get("/heartbeat", headers={"X-Request-ID": "adf-activity-7"})
    assert r.headers["x-request-id"] == "adf-activity-7"


def test_health_reports_each_dependency(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert {k: v["status"] for k, v in body["checks"].items()} == {
        "blob": "ok",
        "table": "ok",
        "queue": "ok",
        "key_vault": "skipped",
    }


def test_openapi_is_valid_and_lists_every_http_route(client: httpx.Client, host) -> None:
    from shared.http.openapi import openapi_path

    doc = client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    http_functions = [f for f in host.functions if f.trigger_type == "httpTrigger"]
    assert len(http_functions) >= 20
    for fn in http_functions:
        path, _ = openapi_path(fn.trigger["route"])
        for method in fn.trigger["methods"]:
            assert method.lower() in doc["paths"].get(path, {}), f"{method} {path} missing"


def test_docs_page_and_assets_are_served_locally(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/docs/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text  # nothing from a CDN
    js = client.get("/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    assert client.get("/docs/..%2F..%2Fsettings.py").status_code == 404
    assert client.get("/docs/init.js").text.count("/openapi.json") == 1


def test_unknown_route_and_wrong_method(client: httpx.Client) -> None:
    assert client.get("/no/such/route").status_code == 404
    assert client.delete("/heartbeat").status_code in (404, 405)


def test_everything_but_public_routes_is_closed(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    public = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if not op["security"]:
                public.add(f"{method.upper()} {path}")
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            r = client.request(method.upper(), concrete)
            assert r.status_code == 401, f"{method} {path} answered {r.status_code}"
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert r.headers["content-type"].startswith("application/problem+json")
    assert public == {
        "GET /heartbeat",
        "GET /health",
        "GET /openapi.json",
        "GET /docs",
        "GET /docs/{asset}",
        "GET /",  # the dashboard's static page and assets: no data, sign-in inside
        "GET /dashboard/{asset}",
        "POST /auth/jwt/login",
        "POST /auth/register",
        "GET /v2",
        "GET /v2/health/live",
        "GET /v2/health/ready",
    }
