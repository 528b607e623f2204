"""Datasets: CSV or Parquet training data in Blob (uploaded here or dropped there by ADF)."""

import azure.functions as func

from shared.datasets.schemas import DatasetPage, DatasetView
from shared.http import Call, Routes, empty_response, json_response
from shared.http.ingest import INGEST_SCHEMA, INGEST_TYPES, IngestResult, ingest_response
from shared.http.uploads import DATA_FILE_SCHEMA, DATA_FILE_TYPES, read_data_file
from shared.identity.principal import ADMIN
from shared.names import check_name
from shared.pages import PageQuery

bp = func.Blueprint()
routes = Routes(bp, tag="datasets")

# One schema serves every listed media type (Operation has no per-type schemas): the raw
# file, or for multipart/form-data a part named `file` holding it.


@routes.put(
    "datasets/{name}",
    auth="train",
    rate_group="upload",
    response=DatasetView,
    status=201,
    body_schema=DATA_FILE_SCHEMA,
    body_content_types=DATA_FILE_TYPES,
    errors=(409, 413, 415, 422),
)
def put_dataset(call: Call) -> func.HttpResponse:
    """Upload or replace a dataset: raw CSV/Parquet, or multipart with a `file` part."""
    name = check_name(call.param("name"), "dataset")  # before the body or storage is touched
    data, ctype, filename = read_data_file(call.req, call.settings.max_dataset_bytes)
    view, created = call.services.dataset_store.put(name, data, media_type=ctype, filename=filename)
    return json_response(
        view, status=201 if created else 200, headers={"Location": f"/datasets/{name}"}
    )


@routes.post(
    "datasets/{name}/records",
    auth="train",
    rate_group="upload",
    response=IngestResult,
    status=201,
    body_schema=INGEST_SCHEMA,
    body_content_types=INGEST_TYPES,
    errors=(404, 409, 413, 415, 422),
)
def ingest_records(call: Call) -> func.HttpResponse:
    """Append records as a new immutable part (the same batch twice is stored once)."""
    name = check_name(call.param("name"), "dataset")
    return ingest_response(call, call.services.ingestor, name, f"/datasets/{name}")


@routes.get("datasets", auth="train", query=PageQuery, response=DatasetPage, audited=False)
def list_datasets(call: Call) -> func.HttpResponse:
    """All datasets in Blob, a page at a time (pass continuation_token for the next page)."""
    q = call.query(PageQuery)
    items, token = call.services.dataset_store.list_datasets(q.limit, q.continuation_token)
    return json_response(DatasetPage(items=items, continuation_token=token))


@routes.get(
    "datasets/{name}", auth="train", response=DatasetView, errors=(404, 409, 422), audited=False
)
def get_dataset(call: Call) -> func.HttpResponse:
    """One dataset: format, columns and dtypes, rows, size, sha256, files."""
    name = check_name(call.param("name"), "dataset")
    return json_response(call.services.dataset_store.get(name))


@routes.delete("datasets/{name}", auth=ADMIN, status=204, errors=(404, 422))
def delete_dataset(call: Call) -> func.HttpResponse:
    """Delete a dataset: every blob under its folder and its cached metadata."""
    call.services.dataset_store.delete(check_name(call.param("name"), "dataset"))
    return empty_response(204)
