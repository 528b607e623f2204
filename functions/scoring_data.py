"""Batch scoring over HTTP, in and out: scoring datasets, a model's jobs, scored files."""

import azure.functions as func

from shared.datasets.schemas import DatasetView
from shared.errors import NotFound, PayloadTooLarge
from shared.http import Call, Routes, empty_response, json_response
from shared.http.ingest import INGEST_SCHEMA, INGEST_TYPES, IngestResult, ingest_response
from shared.http.uploads import DATA_FILE_SCHEMA, DATA_FILE_TYPES, read_data_file
from shared.names import check_name
from shared.pages import PageQuery
from shared.prediction.batch.schemas import (
    OutputQuery,
    ScoringDatasetPage,
    ScoringJobPage,
    ScoringJobQuery,
)

bp = func.Blueprint()
routes = Routes(bp, tag="predict")

_MEDIA = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


@routes.put(
    "scoring/{name}",
    auth="predict",
    rate_group="upload",
    response=DatasetView,
    status=201,
    body_schema=DATA_FILE_SCHEMA,
    body_content_types=DATA_FILE_TYPES,
    errors=(409, 413, 415, 422),
)
def put_scoring_dataset(call: Call) -> func.HttpResponse:
    """Upload the rows to score (same formats and limits as datasets). Named after the
    model, POST /predict {"model": name} scores them; else pass {"dataset": name}."""
    name = check_name(call.param("name"), "dataset")
    data, ctype, filename = read_data_file(call.req, call.settings.max_dataset_bytes)
    view, created = call.services.batch_scorer.inputs.put(
        name, data, media_type=ctype, filename=filename
    )
    return json_response(
        view, status=201 if created else 200, headers={"Location": f"/scoring/{name}"}
    )


@routes.post(
    "scoring/{name}/records",
    auth="predict",
    rate_group="upload",
    response=IngestResult,
    status=201,
    body_schema=INGEST_SCHEMA,
    body_content_types=INGEST_TYPES,
    errors=(404, 409, 413, 415, 422),
)
def ingest_scoring_records(call: Call) -> func.HttpResponse:
    """Append rows to score as a new immutable part (the same batch twice is stored once)."""
    name = check_name(call.param("name"), "dataset")
    return ingest_response(call, call.services.scoring_ingestor, name, f"/scoring/{name}")


@routes.get("scoring", auth="predict", query=PageQuery, response=ScoringDatasetPage, audited=False)
def list_scoring_datasets(call: Call) -> func.HttpResponse:
    """The scoring datasets (uploaded here, or dropped into container 'scoring' by ADF)."""
    q = call.query(PageQuery)
    items, token = call.services.batch_scorer.inputs.list_datasets(q.limit, q.continuation_token)
    return json_response(ScoringDatasetPage(items=items, continuation_token=token))


@routes.get(
    "scoring/{name}", auth="predict", response=DatasetView, errors=(404, 409), audited=False
)
def get_scoring_dataset(call: Call) -> func.HttpResponse:
    """One scoring dataset: columns, rows, files."""
    return json_response(
        call.services.batch_scorer.inputs.get(check_name(call.param("name"), "dataset"))
    )


@routes.delete("scoring/{name}", auth="predict", status=204, errors=(404,))
def delete_scoring_dataset(call: Call) -> func.HttpResponse:
    """Delete a scoring dataset (its scored outputs stay)."""
    call.services.batch_scorer.inputs.delete(check_name(call.param("name"), "dataset"))
    return empty_response(204)


@routes.get(
    "predict/jobs", auth="predict", query=ScoringJobQuery, response=ScoringJobPage, audited=False
)
def list_scoring_jobs(call: Call) -> func.HttpResponse:
    """The newest batch scoring jobs, optionally those of one model."""
    q = call.query(ScoringJobQuery)
    model = None if q.model is None else check_name(q.model, "model")
    return json_response(
        ScoringJobPage(items=call.services.batch_scorer.jobs.recent(q.limit, model))
    )


@routes.get(
    "predict/jobs/{id}/output",
    auth="predict",
    query=OutputQuery,
    response_content_types=("application/vnd.apache.parquet", "text/csv"),
    errors=(404, 409, 413),
    audited=False,
)
def download_output(call: Call) -> func.HttpResponse:
    """A finished job's scored file (Parquet, or CSV when the job wrote one)."""
    q = call.query(OutputQuery)
    scorer = call.services.batch_scorer
    job = scorer.jobs.get(call.param("id"))
    wanted = [
        path
        for target in job.targets
        if q.model is None or target.model == q.model
        for path in target.outputs
        if path.endswith("." + q.format)
    ]
    if not wanted:
        raise NotFound(
            f"Scoring job {job.job_id} ({job.status}) has no {q.format} output"
            + (f" for model '{q.model}'" if q.model else "")
            + ": outputs appear when the job has finished; CSV only when it was asked for.",
            code="OUTPUT_NOT_FOUND",
        )
    if len(wanted) > 1:
        models = sorted({t.model for t in job.targets})
        raise NotFound(
            f"Scoring job {job.job_id} scored several models ({', '.join(models)}): pass"
            " ?model= to choose one.",
            code="OUTPUT_NOT_FOUND",
        )
    blob = scorer.outputs.get_blob_client(wanted[0].split("/", 1)[1])
    size = blob.get_blob_properties().size
    limit = call.settings.max_download_bytes
    if size > limit:
        raise PayloadTooLarge(
            f"The output is {size} bytes, above MAX_DOWNLOAD_BYTES ({limit}): read"
            f" {wanted[0]} from Blob Storage directly (ADF Copy, azcopy or the SDK).",
            code="OUTPUT_TOO_LARGE",
        )
    filename = wanted[0].rsplit("/", 1)[1]
    return func.HttpResponse(
        blob.download_blob().readall(),
        mimetype=_MEDIA[q.format],
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
