"""Short-lived, write-only upload URLs for files too large for a request body.

The Functions host refuses bodies over FUNCTIONS_REQUEST_BODY_SIZE_LIMIT (100 MiB by
default). Instead the API hands out a SAS URL for exactly one blob, with create+write
permission only (no read, list or delete), valid for minutes; the client PUTs the file
to Blob storage directly, where the dataset store finds it (Blob is its source of truth).

In Azure the account has no shared keys, so the SAS is a user-delegation SAS signed with
a key obtained by the app's managed identity (Storage Blob Data Contributor includes
``generateUserDelegationKey``), HTTPS only. Locally (Azurite) it is signed with the
emulator's well-known account key.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from shared.errors import ValidationFailed

FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}\.(csv|parquet)$")
UPLOAD_TTL = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=5)


class UploadUrlRequest(BaseModel):
    file_name: str = Field(
        min_length=5, max_length=108, description="e.g. part-0001.csv or 2026-12.parquet"
    )


class UploadUrl(BaseModel):
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str]
    blob: str
    expires_at: datetime


def check_file_name(value: str) -> str:
    if not FILE_NAME.fullmatch(value):
        raise ValidationFailed(
            "file_name: 1-100 of A-Z a-z 0-9 _ - then .csv or .parquet (no folders).",
            [{"loc": ["body", "file_name"], "msg": "invalid file name", "type": "file_name"}],
        )
    return value


def blob_upload_url(
    service: Any, container: str, blob: str, now: datetime | None = None
) -> UploadUrl:
    """A create+write SAS URL for one blob of ``service`` (a BlobServiceClient)."""
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    now = now or datetime.now(UTC)
    start, expiry = now - CLOCK_SKEW, now + UPLOAD_TTL
    permission = BlobSasPermissions(create=True, write=True)
    account_key = getattr(service.credential, "account_key", None)
    if account_key:  # Azurite / connection string
        sas = generate_blob_sas(
            service.account_name,
            container,
            blob,
            account_key=account_key,
            permission=permission,
            start=start,
            expiry=expiry,
        )
    else:  # managed identity: no account key exists
        delegation = service.get_user_delegation_key(start, expiry)
        sas = generate_blob_sas(
            service.account_name,
            container,
            blob,
            user_delegation_key=delegation,
            permission=permission,
            start=start,
            expiry=expiry,
            protocol="https",
        )
    url = f"{service.url.rstrip('/')}/{container}/{quote(blob)}?{sas}"
    return UploadUrl(
        url=url,
        headers={"x-ms-blob-type": "BlockBlob"},
        blob=f"{container}/{blob}",
        expires_at=expiry,
    )
