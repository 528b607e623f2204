"""Batch scoring: POST /predict (ADF's async pattern), its jobs, and the scoring queue."""

import azure.functions as func

from shared.http import Call, Routes
from shared.http.async_jobs import JobAccepted, accepted, job_status, queue_json
from shared.observability import get_logger
from shared.prediction.batch_jobs import TERMINAL, ScoringJob
from shared.prediction.batch_service import BatchScoreRequest, batch_scorer
from shared.storage_deadline import worker_deadline

bp = func.Blueprint()
routes = Routes(bp, tag="predict")
log = get_logger("batch")


@routes.post(
    "predict",
    auth="predict",
    rate_group="predict",
    body=BatchScoreRequest,
    response=JobAccepted,
    status=202,
    errors=(404, 409),
)
def batch_score(call: Call) -> func.HttpResponse:
    """Score the scoring datasets in Blob into container 'scored': 202 + Location to poll."""
    body = call.json(BatchScoreRequest, allow_empty=True)
    job, replayed = batch_scorer().start(
        body, by=call.user.username, idempotency_key=call.req.headers.get("idempotency-key")
    )
    return accepted(job.job_id, job.status, f"/predict/jobs/{job.job_id}", replayed)


@routes.get("predict/jobs/{id}", auth="predict", response=ScoringJob, errors=(404,), audited=False)
def get_scoring_job(call: Call) -> func.HttpResponse:
    """A batch scoring job: 202 while queued/running, 200 once finished (outputs, counts)."""
    job = batch_scorer().jobs.get(call.param("id"))
    return job_status(job, job.status in TERMINAL, f"/predict/jobs/{job.job_id}")


@bp.function_name("scoring_worker")
@bp.queue_trigger(arg_name="msg", queue_name="scoring", connection="AzureWebJobsStorage")
def scoring_worker(msg: func.QueueMessage) -> None:
    """Plan a job, score one chunk, or finalize one model's output."""
    with worker_deadline():
        batch_scorer().handle(queue_json(msg), msg.dequeue_count or 1, msg.id)


@bp.function_name("scoring_poison")
@bp.queue_trigger(arg_name="msg", queue_name="scoring-poison", connection="AzureWebJobsStorage")
def scoring_poison(msg: func.QueueMessage) -> None:
    """A message that failed every retry: mark its chunk (or target, or job) failed."""
    with worker_deadline():
        batch_scorer().give_up(queue_json(msg), "gave up after repeated failures")
