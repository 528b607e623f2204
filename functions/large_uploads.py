"""Large files: a write-only upload URL straight to Blob instead of a request body."""

import azure.functions as func

from shared.http import Call, Routes, json_response
from shared.names import check_name
from shared.resources import Containers
from shared.upload_urls import UploadUrl, UploadUrlRequest, blob_upload_url, check_file_name

bp = func.Blueprint()
routes = Routes(bp, tag="datasets")


@routes.post(
    "datasets/{name}/upload-url",
    auth="train",
    body=UploadUrlRequest,
    response=UploadUrl,
    rate_group="upload",
)
def dataset_upload_url(call: Call) -> func.HttpResponse:
    """A 15-minute create+write URL for one file of a dataset, for files over the body limit."""
    name = check_name(call.param("name"), "dataset")
    file_name = check_file_name(call.json(UploadUrlRequest).file_name)
    storage = call.services.storage
    storage.container(Containers.DATASETS)  # exists before the client's PUT
    upload = blob_upload_url(storage.blob_service, Containers.DATASETS, f"{name}/{file_name}")
    return json_response(upload, headers={"Cache-Control": "no-store"})
