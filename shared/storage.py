"""Blob, Table and Queue clients, built once per process from the settings.

Locally (and in tests) a connection string points at Azurite; in Azure the account
name plus a managed identity is used and no key exists anywhere. Containers, tables
and queues are created on first use, once per process.
"""

from __future__ import annotations

import contextlib
import threading
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

# Fail over to a 503 within seconds during an outage instead of the SDK's long default.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.3,
    "connection_timeout": 5,
    "read_timeout": 60,
}


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
        if conn:
            return cls(
                BlobServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
                TableServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
                QueueServiceClient.from_connection_string(conn, **CLIENT_OPTIONS),
            )
        account = settings.storage_account_name
        if not account:
            raise StorageNotConfigured(
                "Set STORAGE_CONNECTION_STRING (Azurite) or STORAGE_ACCOUNT_NAME (Azure)."
            )
        credential = credential or build_credential(settings)
        return cls(
            BlobServiceClient(
                f"https://{account}.blob.core.windows.net", credential, **CLIENT_OPTIONS
            ),
            TableServiceClient(
                f"https://{account}.table.core.windows.net", credential=credential, **CLIENT_OPTIONS
            ),
            QueueServiceClient(
                f"https://{account}.queue.core.windows.net", credential, **CLIENT_OPTIONS
            ),
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
