"""Batch scoring: POST /predict (ADF's async pattern), its jobs, and the scoring queue."""

import json

import azure.functions as func

from shared.errors import ValidationFailed
from shared.http import Call, Routes, json_response
from shared.observability import get_logger
from shared.prediction.batch_jobs import TERMINAL, ScoringJob
from shared.prediction.batch_service import BatchScoreRequest, ScoringAccepted, batch_scorer

bp = func.Blueprint()
routes = Routes(bp, tag="predict")
log = get_logger("batch")
POLL_SECONDS = "10"


@routes.post(
    "predict",
    auth="predict",
    body=BatchScoreRequest,
    response=ScoringAccepted,
    status=202,
    errors=(404, 409),
)
def batch_score(call: Call) -> func.HttpResponse:
    """Score the scoring datasets in Blob into container 'scored': 202 + Location to poll."""
    body = call.json(BatchScoreRequest, allow_empty=True)
    job, replayed = batch_scorer().start(
        body, by=call.user.username, idempotency_key=call.req.headers.get("idempotency-key")
    )
    url = f"/predict/jobs/{job.job_id}"
    headers = {"Location": url, "Retry-After": POLL_SECONDS}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(
        ScoringAccepted(job_id=job.job_id, status=job.status, status_url=url),
        status=202,
        headers=headers,
    )


@routes.get("predict/jobs/{id}", auth="predict", response=ScoringJob, errors=(404,), audited=False)
def get_scoring_job(call: Call) -> func.HttpResponse:
    """A batch scoring job: 202 while queued/running, 200 once finished (outputs, counts)."""
    job = batch_scorer().jobs.get(call.param("id"))
    if job.status in TERMINAL:
        return json_response(job)
    return json_response(
        job,
        status=202,
        headers={"Retry-After": POLL_SECONDS, "Location": f"/predict/jobs/{job.job_id}"},
    )


@bp.function_name("scoring_worker")
@bp.queue_trigger(arg_name="msg", queue_name="scoring", connection="AzureWebJobsStorage")
def scoring_worker(msg: func.QueueMessage) -> None:
    """Plan a job, score one chunk, or finalize one model's output."""
    batch_scorer().handle(_message(msg), msg.dequeue_count or 1)


@bp.function_name("scoring_poison")
@bp.queue_trigger(arg_name="msg", queue_name="scoring-poison", connection="AzureWebJobsStorage")
def scoring_poison(msg: func.QueueMessage) -> None:
    """A message that failed every retry: mark its chunk (or target, or job) failed."""
    batch_scorer().give_up(_message(msg), "gave up after repeated failures")


def _message(msg: func.QueueMessage) -> dict:
    try:
        body = json.loads(msg.get_body())
    except ValueError:
        raise ValidationFailed("A scoring message is not JSON.") from None
    if not isinstance(body, dict):
        raise ValidationFailed("A scoring message is not an object.")
    return body
