"""Batch scoring: POST /predict (ADF's async pattern), its jobs, and the scoring queue."""

import azure.functions as func

from shared.container import Services
from shared.http import Call, Routes, json_response
from shared.http.async_jobs import (
    JobAccepted,
    NothingToDo,
    accepted,
    job_status,
    nothing_to_do,
    queue_json,
)
from shared.observability import get_logger
from shared.prediction.batch.errors import NothingToScore
from shared.prediction.batch.jobs import TERMINAL, ScoringJob
from shared.prediction.batch.schemas import BatchScoreRequest
from shared.resources import SCORING_POISON, Queues

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
    also=((200, NothingToDo),),
    errors=(404, 409),
)
def batch_score(call: Call) -> func.HttpResponse:
    """Score the scoring datasets in Blob into container 'scored': 202 + Location to poll."""
    body = call.json(BatchScoreRequest, allow_empty=True)
    try:
        job, replayed = call.services.batch_scorer.start(
            body, by=call.user.username, idempotency_key=call.req.headers.get("idempotency-key")
        )
    except NothingToScore as nothing:
        if body.alias is not None:
            raise  # an alias was asked for and matched nothing: 404 naming it
        return nothing_to_do(nothing.detail)
    return accepted(job.job_id, job.status, f"/predict/jobs/{job.job_id}", replayed)


@routes.get("predict/jobs/{id}", auth="predict", response=ScoringJob, errors=(404,), audited=False)
def get_scoring_job(call: Call) -> func.HttpResponse:
    """A batch scoring job: 202 while queued/running, 200 once finished (outputs, counts)."""
    job = call.services.batch_scorer.jobs.get(call.param("id"))
    return job_status(job, job.status in TERMINAL, f"/predict/jobs/{job.job_id}")


@routes.post("predict/jobs/{id}/cancel", auth="predict", response=ScoringJob, errors=(404, 409))
def cancel_scoring_job(call: Call) -> func.HttpResponse:
    """Cancel a queued or running batch scoring job: it ends `cancelled`, no output."""
    return json_response(call.services.batch_scorer.cancel(call.param("id"), call.user.username))


@routes.queue("scoring_worker", queue=Queues.SCORING)
def scoring_worker(services: Services, msg: func.QueueMessage) -> None:
    """Plan a job, score one chunk, or finalize one model's output."""
    services.batch_scorer.handle(queue_json(msg), msg.dequeue_count or 1, msg.id)


@routes.queue("scoring_poison", queue=SCORING_POISON)
def scoring_poison(services: Services, msg: func.QueueMessage) -> None:
    """A message that failed every retry: mark its chunk (or target, or job) failed."""
    services.batch_scorer.give_up(queue_json(msg), "gave up after repeated failures")
