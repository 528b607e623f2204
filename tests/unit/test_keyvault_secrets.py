"""The Key Vault path of the secret store, through the SDK's own transport hook.

No Azure endpoint is reached: a requests adapter answers with responses shaped like
Key Vault's (challenge first, then the secret), and the credential is a fake.
"""

import io
import json

import pytest
import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport

from shared.errors import ServiceUnavailable
from shared.secrets import EnvironmentSecrets, KeyVaultSecrets, build_secret_store
from shared.settings import Settings

VAULT = "https://unit-test-vault.vault.azure.net"


class FakeCredential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("fake-token", 4_102_444_800)

    def get_token_info(self, *scopes: str, **kwargs: object):
        from azure.core.credentials import AccessTokenInfo

        self.scopes.append(scopes)
        return AccessTokenInfo("fake-token", 4_102_444_800)


class RecordedVault(requests.adapters.BaseAdapter):
    """Answers like Key Vault: 401 + challenge without a token, then the secret or 404."""

    def __init__(self, secrets: dict[str, str], fail: bool = False) -> None:
        super().__init__()
        self.secrets = secrets
        self.fail = fail
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.requests.append(request)
        if self.fail:
            raise requests.exceptions.ConnectionError("vault unreachable")
        resp = requests.Response()
        resp.request = request
        resp.url = request.url
        resp.headers["Content-Type"] = "application/json; charset=utf-8"
        if "Authorization" not in request.headers:
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = (
                'Bearer authorization="https://login.microsoftonline.com/tenant-id", '
                'resource="https://vault.azure.net"'
            )
            resp._content = b""
            return _finish(resp)
        name = request.path_url.split("?")[0].rstrip("/").split("/")[2]
        if name in self.secrets:
            resp.status_code = 200
            resp._content = json.dumps(
                {
                    "value": self.secrets[name],
                    "id": f"{VAULT}/secrets/{name}/0123456789abcdef",
                    "attributes": {
                        "enabled": True,
                        "created": 1700000000,
                        "updated": 1700000000,
                        "recoveryLevel": "Recoverable+Purgeable",
                    },
                }
            ).encode()
        else:
            resp.status_code = 404
            resp._content = json.dumps(
                {
                    "error": {
                        "code": "SecretNotFound",
                        "message": f"A secret with (name/id) {name} was not found.",
                    }
                }
            ).encode()
        return _finish(resp)

    def close(self) -> None:
        pass


def _finish(resp: requests.Response) -> requests.Response:
    resp.raw = urllib3.HTTPResponse(
        body=io.BytesIO(resp._content),
        headers=dict(resp.headers),
        status=resp.status_code,
        preload_content=False,
    )
    return resp


def vault(secrets: dict[str, str], fail: bool = False) -> tuple[KeyVaultSecrets, RecordedVault]:
    adapter = RecordedVault(secrets, fail)
    session = requests.Session()
    session.mount("https://", adapter)
    store = KeyVaultSecrets(
        VAULT, FakeCredential(), transport=RequestsTransport(session=session), retry_total=0
    )
    return store, adapter


def test_reads_a_secret_with_the_bearer_challenge() -> None:
    store, adapter = vault({"jwt-signing-key": "s3cret-value"})
    assert store.get("jwt-signing-key") == "s3cret-value"
    authed = [r for r in adapter.requests if "Authorization" in r.headers]
    assert authed and authed[-1].headers["Authorization"] == "Bearer fake-token"
    assert all(r.url.startswith(VAULT) for r in adapter.requests)


def test_missing_secret_is_none_and_values_are_cached() -> None:
    store, adapter = vault({"a": "1"})
    assert store.get("nope") is None
    assert store.get("a") == "1"
    count = len(adapter.requests)
    assert store.get("a") == "1"
    assert len(adapter.requests) == count


def test_unreachable_vault_is_service_unavailable() -> None:
    store, _ = vault({}, fail=True)
    with pytest.raises(ServiceUnavailable) as err:
        store.get("jwt-signing-key")
    assert err.value.extra["dependency"] == "key_vault"


def test_environment_store_without_vault_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_SETTINGS_PATH", "/nonexistent")
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    monkeypatch.setenv("JWT_SIGNING_KEY", "from-env")
    store = build_secret_store(Settings())
    assert isinstance(store, EnvironmentSecrets)
    assert store.get("jwt-signing-key") == "from-env"


def test_vault_url_selects_key_vault_with_the_given_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCAL_SETTINGS_PATH", "/nonexistent")
    monkeypatch.setenv("KEY_VAULT_URL", VAULT)
    store = build_secret_store(Settings(), credential=FakeCredential())
    assert isinstance(store, KeyVaultSecrets)
