"""Identity over the real HTTP path: the local host, the app, Azurite."""

import time

import httpx
import jwt
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login, restart_services

pytestmark = pytest.mark.e2e


def test_adf_form_login_byte_for_byte(client: httpx.Client) -> None:
    # Exactly what an ADF Web activity sends: a urlencoded body built by hand.
    body = f"username={ADMIN}&password={ADMIN_PASSWORD}&grant_type=password".encode()
    r = client.post(
        "/auth/jwt/login",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) == {"access_token", "token_type", "expires_in"}
    assert data["token_type"] == "bearer" and data["expires_in"] == 3600
    assert r.headers["cache-control"] == "no-store"
    assert client.get("/users/me", headers=bearer(data["access_token"])).json()["username"] == ADMIN


def test_form_login_with_swagger_extras_and_url_encoding(client: httpx.Client, make_user) -> None:
    _, username, password, _ = make_user()
    r = client.post(
        "/auth/jwt/login",
        data={
            "username": username,
            "password": password,
            "grant_type": "password",
            "scope": "",
            "client_id": "adf",
            "client_secret": "",
        },
    )
    assert r.status_code == 200


def test_json_login(client: httpx.Client) -> None:
    r = client.post("/auth/jwt/login", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert r.status_code == 200 and r.json()["access_token"]


def test_wrong_password_and_unknown_user_get_the_same_answer(
    client: httpx.Client, make_user
) -> None:
    _, username, _, _ = make_user()
    wrong = client.post("/auth/jwt/login", data={"username": username, "password": "nope-nope"})
    unknown = client.post("/auth/jwt/login", data={"username": "ghost-user", "password": "x"})
    for r in (wrong, unknown):
        assert r.status_code == 400
        assert r.json()["code"] == "LOGIN_BAD_CREDENTIALS"
        assert r.json()["detail"] == "LOGIN_BAD_CREDENTIALS"
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(wrong.json()) == strip(unknown.json())


def test_missing_fields_are_422(client: httpx.Client) -> None:
    r = client.post("/auth/jwt/login", data={"username": ADMIN})
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["password"]
    assert client.post("/auth/jwt/login", json={}).status_code == 422


def test_lockout_after_failures_and_its_expiry(client: httpx.Client, make_user) -> None:
    _, username, password, _ = make_user()
    for _ in range(3):  # LOGIN_MAX_FAILURES=3 in the test settings
        r = client.post("/auth/jwt/login", data={"username": username, "password": "bad-pass"})
        assert r.status_code == 400
    locked = client.post("/auth/jwt/login", data={"username": username, "password": password})
    assert locked.status_code == 429
    assert locked.json()["code"] == "LOGIN_LOCKED"
    assert 1 <= int(locked.headers["retry-after"]) <= 3
    time.sleep(int(locked.headers["retry-after"]) + 0.5)
    assert (
        client.post(
            "/auth/jwt/login", data={"username": username, "password": password}
        ).status_code
        == 200
    )


def forge(client: httpx.Client, **changes) -> str:
    token = login(client, ADMIN, ADMIN_PASSWORD)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(changes)
    return jwt.encode(claims, b"not-the-server-key-but-32-bytes-long!", algorithm="HS256")


def test_forged_tokens_are_refused(client: httpx.Client) -> None:
    token = login(client, ADMIN, ADMIN_PASSWORD)
    header, payload, sig = token.split(".")
    unsigned = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}), None, algorithm="none"
    )
    cases = {
        "alg-none": unsigned,
        "wrong-key": forge(client),
        "tampered": ".".join([header, payload[:-4] + "AAAA", sig]),
        "garbage": "not.a.token",
    }
    for name, bad in cases.items():
        r = client.get("/users/me", headers=bearer(bad))
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"].startswith("Bearer")


def test_validly_signed_tokens_with_bad_claims_are_refused(client: httpx.Client, app_env) -> None:
    # Signed with the server's own key: only the claims are wrong.
    key = app_env["JWT_SIGNING_KEY"].encode()
    claims = jwt.decode(login(client, ADMIN, ADMIN_PASSWORD), options={"verify_signature": False})
    now = int(time.time())
    cases = {
        "expired": {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600},
        "wrong-audience": {"aud": "another-api"},
        "wrong-issuer": {"iss": "someone-else"},
        "no-jti": {"jti": None},
    }
    for name, change in cases.items():
        forged = {k: v for k, v in {**claims, **change}.items() if v is not None}
        r = client.get("/users/me", headers=bearer(jwt.encode(forged, key, algorithm="HS256")))
        assert r.status_code == 401, name
    good = jwt.encode(claims, key, algorithm="HS256")
    assert client.get("/users/me", headers=bearer(good)).status_code == 200


def test_logout_revokes_the_token(client: httpx.Client, make_user) -> None:
    _, _, _, headers = make_user()
    assert client.get("/users/me", headers=headers).status_code == 200
    assert client.post("/auth/jwt/logout", headers=headers).status_code == 204
    r = client.get("/users/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "TOKEN_REVOKED"


def test_revocation_is_stored_not_only_cached(client: httpx.Client, make_user, services) -> None:

    _, _, _, headers = make_user()
    assert client.post("/auth/jwt/logout", headers=headers).status_code == 204
    restart_services()  # a fresh instance: nothing cached
    assert client.get("/users/me", headers=headers).status_code == 401


def test_user_role_is_confined(client: httpx.Client, make_user) -> None:
    _, _, _, headers = make_user(["user"])
    assert client.get("/users/me", headers=headers).status_code == 200
    for method, path in [
        ("GET", "/users"),
        ("GET", "/roles"),
        ("GET", "/audit"),
        ("POST", "/roles"),
        ("DELETE", "/users/0123"),
    ]:
        r = client.request(method, path, headers=headers, json={})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["code"] == "ADMIN_REQUIRED"


def test_idor_on_users_is_refused(client: httpx.Client, make_user) -> None:
    victim_id, _, _, _ = make_user()
    _, _, _, headers = make_user()
    assert client.get(f"/users/{victim_id}", headers=headers).status_code == 403
    assert (
        client.patch(
            f"/users/{victim_id}", headers=headers, json={"email": "x@evil.io"}
        ).status_code
        == 403
    )
    assert client.delete(f"/users/{victim_id}", headers=headers).status_code == 403


def test_mass_assignment_is_refused(client: httpx.Client, make_user) -> None:
    _, _, _, headers = make_user(["user"])
    for body in ({"roles": ["admin"]}, {"is_active": True}, {"id": "x"}):
        r = client.patch("/users/me", headers=headers, json=body)
        assert r.status_code == 422, body
    assert client.get("/users/me", headers=headers).json()["roles"] == ["user"]


def test_me_update_email_and_password(client: httpx.Client, make_user) -> None:
    _, username, password, headers = make_user()
    r = client.patch("/users/me", headers=headers, json={"email": "me@example.org"})
    assert r.status_code == 200 and r.json()["email"] == "me@example.org"
    r = client.patch(
        "/users/me",
        headers=headers,
        json={"password": "new-password-long", "current_password": "wrong"},
    )
    assert r.status_code == 400 and r.json()["code"] == "BAD_CURRENT_PASSWORD"
    r = client.patch(
        "/users/me", headers=headers, json={"password": "short", "current_password": password}
    )
    assert r.status_code == 422
    time.sleep(1.05)  # tokens issued before the change (same second) stay valid
    r = client.patch(
        "/users/me",
        headers=headers,
        json={"password": "new-password-long", "current_password": password},
    )
    assert r.status_code == 200
    assert "password_hash" not in r.text
    time.sleep(1.1)
    assert client.get("/users/me", headers=headers).status_code == 401  # old token
    login(client, username, "new-password-long")


def test_register_rules(client: httpx.Client, admin_headers, make_user) -> None:
    _, _, _, user_headers = make_user(["user"])
    body = {"username": "newcomer1", "password": "long-enough-pass"}
    assert client.post("/auth/register", json=body).status_code == 403  # self-registration off
    assert client.post("/auth/register", json=body, headers=user_headers).status_code == 403
    r = client.post("/auth/register", json={**body, "roles": ["user"]}, headers=admin_headers)
    assert r.status_code == 201
    user = r.json()
    assert set(user) == {
        "id",
        "username",
        "email",
        "roles",
        "is_active",
        "created_at",
        "updated_at",
    }
    assert r.headers["location"] == f"/users/{user['id']}"
    dup = client.post(
        "/auth/register", json={**body, "username": "NEWCOMER1"}, headers=admin_headers
    )
    assert dup.status_code == 409 and dup.json()["code"] == "USER_ALREADY_EXISTS"
    weak = client.post(
        "/auth/register", json={"username": "weakling", "password": "short"}, headers=admin_headers
    )
    assert weak.status_code == 422
    bad_name = client.post(
        "/auth/register", json={"username": "../etc", "password": "x" * 20}, headers=admin_headers
    )
    assert bad_name.status_code == 422
    unknown_role = client.post(
        "/auth/register",
        json={"username": "roleless", "password": "long-enough-pass", "roles": ["wizard"]},
        headers=admin_headers,
    )
    assert unknown_role.status_code == 404


def test_admin_manages_users_with_pagination(
    client: httpx.Client, admin_headers, make_user
) -> None:
    ids = {make_user()[0] for _ in range(3)}
    seen, token = set(), None
    for _ in range(50):
        params = {"limit": 2} | ({"continuation_token": token} if token else {})
        page = client.get("/users", headers=admin_headers, params=params).json()
        assert len(page["items"]) <= 2
        seen |= {u["id"] for u in page["items"]}
        token = page["continuation_token"]
        if not token:
            break
    assert ids <= seen
    assert (
        client.get(
            "/users", headers=admin_headers, params={"continuation_token": "!!bad"}
        ).status_code
        == 422
    )


def test_deactivated_and_deleted_users_are_locked_out(
    client: httpx.Client, admin_headers, make_user
) -> None:
    uid, _, _, headers = make_user()
    r = client.patch(f"/users/{uid}", headers=admin_headers, json={"is_active": False})
    assert r.status_code == 200 and r.json()["is_active"] is False
    time.sleep(1.2)  # AUTH_CACHE_TTL_SECONDS=1 in tests (default 10 s, contract 30 s)
    assert client.get("/users/me", headers=headers).status_code == 401
    uid2, _, _, headers2 = make_user()
    assert client.delete(f"/users/{uid2}", headers=admin_headers).status_code == 204
    time.sleep(1.2)
    assert client.get("/users/me", headers=headers2).status_code == 401
    assert client.get(f"/users/{uid2}", headers=admin_headers).status_code == 404


def test_admin_cannot_lock_themselves_out(client: httpx.Client, admin_headers) -> None:
    me = client.get("/users/me", headers=admin_headers).json()
    assert client.delete(f"/users/{me['id']}", headers=admin_headers).status_code == 409
    assert (
        client.patch(
            f"/users/{me['id']}", headers=admin_headers, json={"roles": ["user"]}
        ).status_code
        == 409
    )


def test_roles_crud_and_scope_enforcement(client: httpx.Client, admin_headers, make_user) -> None:
    r = client.post(
        "/roles",
        headers=admin_headers,
        json={"name": "auditor", "scopes": ["audit:read"], "description": "reads"},
    )
    assert r.status_code in (201, 409)
    assert client.get("/roles/auditor", headers=admin_headers).json()["scopes"] == ["audit:read"]
    r = client.put("/roles/trainer", headers=admin_headers, json={"scopes": ["train"]})
    assert r.status_code in (200, 201)
    assert (
        client.post(
            "/roles", headers=admin_headers, json={"name": "bad", "scopes": ["fly"]}
        ).status_code
        == 422
    )
    for name in ("admin", "user"):
        assert client.delete(f"/roles/{name}", headers=admin_headers).status_code == 409
        assert (
            client.put(
                f"/roles/{name}", headers=admin_headers, json={"scopes": ["predict"]}
            ).status_code
            == 409
        )
    names = {r["name"] for r in client.get("/roles", headers=admin_headers).json()["items"]}
    assert {"admin", "user", "auditor", "trainer"} <= names
    assert client.delete("/roles/auditor", headers=admin_headers).status_code == 204
    assert client.get("/roles/auditor", headers=admin_headers).status_code == 404


def test_api_keys_scopes_and_revocation(client: httpx.Client, make_user) -> None:
    _, _, _, headers = make_user(["user"])  # models:read + predict
    r = client.post("/api-keys", headers=headers, json={"name": "app", "scopes": ["predict"]})
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert key.startswith("mlp_")
    listed = client.get("/api-keys", headers=headers).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and key not in client.get("/api-keys", headers=headers).text
    # A key works as a credential, with only its scopes.
    assert client.get("/users/me", headers={"X-API-Key": key}).status_code == 200
    # Scopes beyond the creator's are refused; unknown scopes are invalid.
    r = client.post("/api-keys", headers=headers, json={"name": "x", "scopes": ["train"]})
    assert r.status_code == 403 and r.json()["code"] == "SCOPE_NOT_HELD"
    r = client.post("/api-keys", headers=headers, json={"name": "x", "scopes": ["fly"]})
    assert r.status_code == 422
    # Another user cannot delete it (and learns nothing about it).
    _, _, _, other = make_user()
    assert client.delete(f"/api-keys/{created['id']}", headers=other).status_code == 404
    assert client.delete(f"/api-keys/{created['id']}", headers=headers).status_code == 204
    assert client.get("/users/me", headers={"X-API-Key": key}).status_code == 401
    assert client.get("/users/me", headers={"X-API-Key": key[:-2] + "zz"}).status_code == 401


def test_api_key_cannot_reach_admin_routes_unless_admin(
    client: httpx.Client, admin_headers, make_user
) -> None:
    _, _, _, headers = make_user(["user"])
    key = client.post(
        "/api-keys", headers=headers, json={"name": "k", "scopes": ["models:read"]}
    ).json()["key"]
    assert client.get("/users", headers={"X-API-Key": key}).status_code == 403
    admin_key = client.post(
        "/api-keys", headers=admin_headers, json={"name": "ops", "scopes": ["*"]}
    ).json()["key"]
    assert client.get("/users", headers={"X-API-Key": admin_key}).status_code == 200


def test_expired_api_key_is_refused(client: httpx.Client, make_user) -> None:
    _, _, _, headers = make_user()
    past = client.post(
        "/api-keys",
        headers=headers,
        json={"name": "old", "scopes": ["predict"], "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert past.status_code == 422


def test_bootstrap_is_idempotent(client: httpx.Client, admin_headers, services) -> None:
    from shared.identity.bootstrap import bootstrap_admin

    before = client.get("/users/me", headers=admin_headers).json()
    assert bootstrap_admin(services.settings, services.secret_store, services.users) is False
    restart_services()  # a fresh instance
    after = client.get("/users/me", headers=bearer(login(client, ADMIN, ADMIN_PASSWORD))).json()
    assert after["id"] == before["id"] and after["created_at"] == before["created_at"]


def test_audit_records_mutations_and_refusals(
    client: httpx.Client, admin_headers, make_user
) -> None:
    _, username, _, headers = make_user(["user"])
    client.get("/users", headers=headers)  # refused: 403
    client.patch(
        "/users/me", headers={**headers, "X-Request-ID": "audit-probe-1"}, json={"email": "a@b.io"}
    )
    client.get("/users/me", headers=headers)  # a read: not audited
    entries = client.get("/audit", headers=admin_headers, params={"user": username}).json()
    rows = {(e["method"], e["route"], e["status"]) for e in entries["items"]}
    assert ("GET", "users", 403) in rows
    assert ("PATCH", "users/me", 200) in rows
    assert ("GET", "users/me", 200) not in rows
    mine = client.get("/audit/me", headers=headers).json()["items"]
    assert any(e["request_id"] == "audit-probe-1" for e in mine)
    assert all(e["principal"] == username for e in mine)
    assert client.get("/audit", headers=headers).status_code == 403
