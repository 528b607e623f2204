"""Shared fixtures: a real Azurite (in memory, free ports) and the app served over HTTP.

Fixtures are lazy: unit tests that use none of them start nothing.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
ADMIN = "admin"
ADMIN_PASSWORD = "bootstrap-secret-for-tests"

# Settings for the app under test; shortened timings keep lockout/cache tests fast.
TEST_ENV = {
    "APP_ENVIRONMENT": "local",
    "LOCAL_SETTINGS_PATH": str(ROOT / "tests" / "no-local-settings.json"),
    "BOOTSTRAP_ADMIN_USERNAME": ADMIN,
    "BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "AUTH_CACHE_TTL_SECONDS": "1",
    "LOGIN_MAX_FAILURES": "3",
    "LOGIN_LOCKOUT_SECONDS": "3",
    "LOG_LEVEL": "WARNING",
    "MAX_DATASET_BYTES": "5000000",
    "MAX_MODEL_BYTES": "5000000",
    "DATASET_MAX_ROWS": "2000000",
    "DATASET_MAX_DECOMPRESSED_BYTES": "20000000",
    "TRAINING_SCHEDULE": "0 0 2 1 * *",
    "ALIAS_CACHE_TTL_SECONDS": "1",
    "MAX_PREDICT_RECORDS": "500",
    "PREDICTION_LOG_SAMPLE_RATE": "1",
    # Limits high enough for every test but the rate-limit one (its own hosts, low limits):
    # every limited route still goes through the limiter and answers its headers.
    "RATE_LIMIT_PREDICT": "1000000/60",
    "RATE_LIMIT_DRIFT": "1000000/60",
    "RATE_LIMIT_EVALUATE": "1000000/60",
    "RATE_LIMIT_UPLOAD": "1000000/60",
    "RATE_LIMIT_TRAIN": "1000000/60",
}


@pytest.fixture(scope="session")
def azurite() -> Iterator[object]:
    from devhost.azurite import start_azurite

    server = start_azurite(in_memory=True)
    try:
        yield server
    finally:
        server.stop()


def restart_services() -> object:
    """Replace the app's container with a fresh one, as a new instance would start."""
    from shared.container import Services
    from shared.http import current_services, use_services
    from shared.settings import Settings

    old = current_services()
    fresh = Services(Settings())
    use_services(fresh)
    old.close()
    return fresh


@pytest.fixture(scope="session")
def app_env(azurite: object) -> Iterator[dict[str, str]]:
    """Point the app's settings at the test Azurite and hand the app a test container."""
    from shared.container import Services
    from shared.http import current_services, use_services
    from shared.settings import Settings, get_settings

    env = dict(TEST_ENV)
    env["STORAGE_CONNECTION_STRING"] = azurite.connection_string  # type: ignore[attr-defined]
    env["AzureWebJobsStorage"] = env["STORAGE_CONNECTION_STRING"]
    env["JWT_SIGNING_KEY"] = secrets.token_urlsafe(48)
    env["MODEL_SIGNING_KEY"] = secrets.token_urlsafe(48)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    services = Services(Settings())
    services.bootstrap()
    previous = use_services(services)
    try:
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        current_services().close()
        use_services(previous)
        get_settings.cache_clear()


@pytest.fixture()
def services(app_env: dict[str, str]) -> object:
    """The container the app under test uses (the same one its handlers get)."""
    from shared.http import current_services

    return current_services()


@pytest.fixture(scope="session")
def host(app_env: dict[str, str]) -> Iterator[object]:
    """function_app served by the local host on a free port (the real HTTP path)."""
    from devhost.server import LocalHost
    from devhost.settings import HostConfig
    from shared.http import current_services, use_services

    ours = current_services()
    import function_app  # installs its own container on first import: keep the test one

    use_services(ours)

    config = HostConfig.load(ROOT / "host.json")
    server = LocalHost(function_app.app, port=0, config=config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def client(host: object) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=host.url, timeout=30) as c:  # type: ignore[attr-defined]
        yield c


def login(client: httpx.Client, username: str, password: str) -> str:
    r = client.post("/auth/jwt/login", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def admin_headers(client: httpx.Client) -> dict[str, str]:
    return bearer(login(client, ADMIN, ADMIN_PASSWORD))


@pytest.fixture()
def make_user(client: httpx.Client, admin_headers: dict[str, str]):
    """Create a user with the given roles; returns (id, username, password, headers)."""

    def make(roles: list[str] | None = None) -> tuple[str, str, str, dict[str, str]]:
        username = f"u{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(16)
        body = {"username": username, "password": password}
        if roles is not None:
            body["roles"] = roles
        r = client.post("/auth/register", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
        return r.json()["id"], username, password, bearer(login(client, username, password))

    return make
