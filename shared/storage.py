"""Blob, Table and Queue clients, built once per process from the settings.

Locally (and in tests) a connection string points at Azurite; in Azure the account
name plus a managed identity is used and no key exists anywhere. Containers, tables
and queues are created on first use, once per process.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.blob import BlobServiceClient, ContainerClient
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from shared.settings import Settings
from shared.storage_deadline import DeadlineHook

# Upper bounds of one attempt; the invocation's storage budget caps both further.
CONNECTION_TIMEOUT = 5
READ_TIMEOUT = 60


def client_options(settings: Settings) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Options of the (Blob, Queue, Table) clients: the same retries, timeouts and budget.

    The Blob and Queue SDKs ignore ``retry_backoff_factor`` (their own ExponentialRetry
    waits 15 s, then 18 s...), so they get an explicit LinearRetry; the Table SDK takes
    azure-core's fixed mode with the same pause. Each client gets its own connection
    pool sized by STORAGE_POOL_SIZE.
    """
    from azure.core.pipeline.policies import RetryMode
    from azure.storage.blob import LinearRetry as BlobLinearRetry
    from azure.storage.queue import LinearRetry as QueueLinearRetry

    hook = DeadlineHook(settings.storage_http_deadline_seconds, CONNECTION_TIMEOUT, READ_TIMEOUT)
    backoff = settings.storage_retry_backoff_seconds
    common = {
        "connection_timeout": CONNECTION_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
        "raw_request_hook": hook,
    }

    def linear(policy: Any) -> Any:
        return policy(
            backoff=backoff,
            retry_total=settings.storage_retry_total,
            random_jitter_range=backoff / 2,
        )

    blob = {**common, "session": _session(settings), "retry_policy": linear(BlobLinearRetry)}
    queue = {**common, "session": _session(settings), "retry_policy": linear(QueueLinearRetry)}
    table = {
        **common,
        "session": _session(settings),
        "retry_total": settings.storage_retry_total,
        "retry_mode": RetryMode.Fixed,
        "retry_backoff_factor": backoff,
    }
    return blob, queue, table


def _session(settings: Settings) -> Any:
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=settings.storage_pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # requests looks in the environment on every request (proxy variables, CA bundle
    # variables, a .netrc file): about 1 ms of CPU per storage call, measured, four calls
    # per trained partition. On Linux (where urllib reads proxies from the environment
    # only) and where none of them exists, the answer is always "nothing", so it is not
    # asked; anywhere else requests goes on reading it per request.
    session.trust_env = sys.platform != "linux" or environment_configures_requests()
    return session


def environment_configures_requests(
    environ: Mapping[str, str] | None = None, home: Path | None = None
) -> bool:
    """Whether anything requests reads from the environment when ``trust_env`` is set
    exists: a ``*_proxy`` variable (any case), ``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``, ``NETRC``, or a ``~/.netrc`` / ``~/_netrc`` file."""
    environ = os.environ if environ is None else environ
    names = {name.lower() for name in environ}
    if any(name.endswith("_proxy") for name in names):
        return True
    if names & {"requests_ca_bundle", "curl_ca_bundle", "netrc"}:
        return True
    home = Path(os.path.expanduser("~")) if home is None else home
    return any((home / name).exists() for name in (".netrc", "_netrc"))


class StorageNotConfigured(RuntimeError):
    pass


def build_credential(settings: Settings) -> Any:
    """A token credential for Azure; only ever built when an Azure endpoint is configured."""
    from azure.identity import DefaultAzureCredential  # lazy: heavy, and never used locally

    return DefaultAzureCredential(managed_identity_client_id=settings.azure_client_id)


class Storage:
    """The three storage clients of one account, plus create-on-first-use helpers."""

    def __init__(
        self,
        blob: BlobServiceClient,
        table: TableServiceClient,
        queue: QueueServiceClient,
    ) -> None:
        self.blob_service = blob
        self.table_service = table
        self.queue_service = queue
        self._ensured: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, credential: Any | None = None) -> Storage:
        conn = settings.storage_connection_string
        blob, queue, table = client_options(settings)
        if conn:
            return cls(
                BlobServiceClient.from_connection_string(conn, **blob),
                TableServiceClient.from_connection_string(conn, **table),
                QueueServiceClient.from_connection_string(conn, **queue),
            )
        account = settings.storage_account_name
        if not account:
            raise StorageNotConfigured(
                "Set STORAGE_CONNECTION_STRING (Azurite) or STORAGE_ACCOUNT_NAME (Azure)."
            )
        credential = credential or build_credential(settings)
        return cls(
            BlobServiceClient(f"https://{account}.blob.core.windows.net", credential, **blob),
            TableServiceClient(
                f"https://{account}.table.core.windows.net", credential=credential, **table
            ),
            QueueServiceClient(f"https://{account}.queue.core.windows.net", credential, **queue),
        )

    def _ensure(self, key: str, create: Any) -> None:
        if key in self._ensured:
            return
        with self._lock:
            if key in self._ensured:
                return
            with contextlib.suppress(ResourceExistsError):
                create()
            self._ensured.add(key)

    def table(self, name: str) -> TableClient:
        client = self.table_service.get_table_client(name)
        self._ensure(f"table:{name}", client.create_table)
        return client

    def container(self, name: str) -> ContainerClient:
        client = self.blob_service.get_container_client(name)
        self._ensure(f"container:{name}", client.create_container)
        return client

    def queue(self, name: str) -> QueueClient:
        # The Functions host reads queue messages as base64 (host.json messageEncoding).
        client = self.queue_service.get_queue_client(
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        self._ensure(f"queue:{name}", client.create_queue)
        return client

    def close(self) -> None:
        for client in (self.blob_service, self.table_service, self.queue_service):
            client.close()
