"""Secrets through one interface: Key Vault when a vault URL is set, the environment otherwise.

Secret names use Key Vault's alphabet (``jwt-signing-key``); locally the same secret is
the environment variable (or local.settings.json value) ``JWT_SIGNING_KEY``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Protocol

from shared.errors import ServiceUnavailable
from shared.settings import Settings, read_local_settings_values


def env_name(secret_name: str) -> str:
    return secret_name.upper().replace("-", "_")


class SecretStore(Protocol):
    source: str

    def get(self, name: str) -> str | None:
        """The secret's current value, or None when it does not exist."""

    def check(self, name: str, timeout: float) -> None:
        """Raise if the store cannot be reached (used by /health)."""


class EnvironmentSecrets:
    source = "environment"

    def get(self, name: str) -> str | None:
        key = env_name(name)
        value = os.environ.get(key)
        if value is None:
            value = read_local_settings_values().get(key)
        return value or None

    def check(self, name: str, timeout: float) -> None:
        return None


class KeyVaultSecrets:
    """Reads secrets from Key Vault with a short per-process cache.

    ``client_kwargs`` reach the SDK client: tests pass ``transport=`` to answer with
    recorded-shape responses instead of calling Azure.
    """

    source = "key_vault"

    def __init__(
        self, vault_url: str, credential: Any, cache_seconds: float = 300.0, **client_kwargs: Any
    ) -> None:
        from azure.keyvault.secrets import SecretClient  # lazy: only Azure mode needs it

        client_kwargs.setdefault("retry_total", 2)
        client_kwargs.setdefault("connection_timeout", 5)
        client_kwargs.setdefault("read_timeout", 10)
        self._client = SecretClient(vault_url=vault_url, credential=credential, **client_kwargs)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit and now - hit[0] < self._cache_seconds:
            return hit[1]
        value = self._fetch(name)
        with self._lock:
            self._cache[name] = (now, value)
        return value

    def _fetch(self, name: str, **kwargs: Any) -> str | None:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        try:
            return self._client.get_secret(name, **kwargs).value
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise ServiceUnavailable(
                "Key Vault could not be read.", dependency="key_vault"
            ) from exc

    def check(self, name: str, timeout: float) -> None:
        self._fetch(name, retry_total=0, connection_timeout=timeout, read_timeout=timeout)


def build_secret_store(settings: Settings, credential: Any | None = None) -> SecretStore:
    if not settings.key_vault_url:
        return EnvironmentSecrets()
    if credential is None:
        from shared.storage import build_credential

        credential = build_credential(settings)
    return KeyVaultSecrets(settings.key_vault_url, credential)
