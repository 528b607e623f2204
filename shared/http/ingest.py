"""The HTTP side of record ingestion, shared by datasets and scoring inputs."""

from __future__ import annotations

from typing import Any

import azure.functions as func
from pydantic import BaseModel, Field

from shared.datasets.schemas import DatasetView
from shared.http.call import Call
from shared.http.responses import json_response
from shared.http.uploads import bounded_body, media_type

INGEST_TYPES = ("application/json", "text/csv", "application/vnd.apache.parquet")
INGEST_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {"type": "string", "format": "binary"},
    ],
    "description": "A JSON array of records, or a CSV/Parquet file of rows.",
}


class IngestResult(BaseModel):
    dataset: DatasetView
    part: str = Field(description="The new part (named by the hash of its rows).")
    rows: int
    replayed: bool = Field(description="True when this batch was already stored.")


def ingest_response(call: Call, ingestor: Any, name: str, location: str) -> func.HttpResponse:
    """201 with the new part, or 200 + Idempotent-Replayed when it was already stored."""
    data = bounded_body(call.req, call.settings.max_ingest_bytes)
    result, replayed = ingestor.ingest(
        name, data, media_type(call.req), call.req.headers.get("idempotency-key")
    )
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(result, status=200 if replayed else 201, headers=headers)
