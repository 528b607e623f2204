"""Issue 15 #2: an API key is not its whole account. Routes that manage the account
(keys, profile, password, audit of oneself, logout) refuse keys, even an admin's."""

from __future__ import annotations

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


def make_key(client, headers, scopes: list[str]) -> tuple[str, str]:
    r = client.post("/api-keys", headers=headers, json={"name": "k", "scopes": scopes})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["key"]


def test_a_key_cannot_manage_its_account(client, make_user, admin_headers, storage_state) -> None:
    _, username, password, headers = make_user(["user"])
    other_id, _ = make_key(client, headers, ["models:read"])
    _, key = make_key(client, headers, ["predict"])
    _, admin_key = make_key(client, admin_headers, ["*"])
    attacks = [
        ("POST", "/api-keys", {"name": "x", "scopes": ["predict"]}),
        ("GET", "/api-keys", None),
        ("DELETE", f"/api-keys/{other_id}", None),
        ("PATCH", "/users/me", {"email": "attacker@example.com"}),
        ("PATCH", "/users/me", {"password": "N3w-long-passphrase!", "current_password": password}),
        ("GET", "/audit/me", None),
        ("POST", "/auth/jwt/logout", None),
    ]
    before = storage_state()
    for which in (key, admin_key):
        for method, url, body in attacks:
            r = client.request(method, url, headers={"X-API-Key": which}, json=body)
            assert_problem(r, 403, "API_KEY_NOT_ALLOWED")
    assert storage_state() == before
    assert client.get("/users/me", headers={"X-API-Key": key}).json()["username"] == username
    # The same key still works where its scope applies, and the password still signs in.
    assert client.get("/models", headers={"X-API-Key": key}).status_code == 403  # no models:read
    r = client.post("/auth/jwt/login", data={"username": username, "password": password})
    assert r.status_code == 200, r.text


def test_openapi_says_which_routes_take_keys(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    schemes = {next(iter(s)) for s in paths["/api-keys"]["post"]["security"]}
    assert "apiKey" not in schemes and "bearer" in schemes
    predict = paths["/predict/{model}"]["post"]["security"]
    assert "apiKey" in {next(iter(s)) for s in predict}
