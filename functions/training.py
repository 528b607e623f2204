"""Training: specs, POST /train (ADF's async pattern), jobs, the monthly timer, the queue."""

import azure.functions as func
from pydantic import BaseModel, Field

from shared import services
from shared.http import Call, Routes, empty_response, json_response
from shared.http.async_jobs import JobAccepted, accepted, job_status, queue_json
from shared.names import check_name
from shared.observability import get_logger
from shared.storage_deadline import worker_deadline
from shared.training.jobs import TERMINAL, Job, JobPage
from shared.training.specs import SpecList, TrainingSpec, TrainingSpecBody

bp = func.Blueprint()
routes = Routes(bp, tag="training")
log = get_logger("training")


class TrainRequest(BaseModel):
    specs: list[str] | None = Field(default=None, max_length=500)


class JobsQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=200)


@routes.put(
    "train/specs/{name}",
    auth="train",
    body=TrainingSpecBody,
    response=TrainingSpec,
    errors=(404,),
)
def put_spec(call: Call) -> func.HttpResponse:
    """Create or replace a training spec; checked against the dataset's columns."""
    name = check_name(call.param("name"), "spec")
    body = call.json(TrainingSpecBody)
    services.trainer().validate_spec(body)
    spec, created = services.spec_store().put(name, body, call.user.username)
    return json_response(
        spec, status=201 if created else 200, headers={"Location": f"/train/specs/{name}"}
    )


@routes.get("train/specs", auth="train", response=SpecList, audited=False)
def list_specs(call: Call) -> func.HttpResponse:
    """Every training spec."""
    return json_response(SpecList(items=services.spec_store().all()))


@routes.get("train/specs/{name}", auth="train", response=TrainingSpec, errors=(404,), audited=False)
def get_spec(call: Call) -> func.HttpResponse:
    """One training spec."""
    return json_response(services.spec_store().get(call.param("name")))


@routes.delete("train/specs/{name}", auth="train", status=204, errors=(404,))
def delete_spec(call: Call) -> func.HttpResponse:
    """Delete a spec (its registered versions stay)."""
    services.spec_store().delete(call.param("name"))
    return empty_response(204)


@routes.post(
    "train",
    auth="train",
    body=TrainRequest,
    response=JobAccepted,
    status=202,
    errors=(404, 409),
    rate_group="train",
)
def train(call: Call) -> func.HttpResponse:
    """Train every enabled spec (or those named): 202 + Location to poll (ADF async pattern)."""
    body = call.json(TrainRequest, allow_empty=True)
    for name in body.specs or []:
        check_name(name, "spec")
    job, replayed = services.trainer().start(
        body.specs,
        trigger="http",
        by=call.user.username,
        idempotency_key=call.req.headers.get("idempotency-key"),
    )
    return accepted(job.job_id, job.status, f"/train/jobs/{job.job_id}", replayed)


@routes.get("train/jobs/{id}", auth="train", response=Job, errors=(404,), audited=False)
def get_job(call: Call) -> func.HttpResponse:
    """A job with per-unit results: 202 while queued/running, 200 once finished."""
    job = services.job_store().get(call.param("id"))
    return job_status(job, job.status in TERMINAL, f"/train/jobs/{job.job_id}")


@routes.get("train/jobs", auth="train", query=JobsQuery, response=JobPage, audited=False)
def list_jobs(call: Call) -> func.HttpResponse:
    """Recent jobs, newest first (without per-unit results)."""
    return json_response(JobPage(items=services.job_store().recent(call.query(JobsQuery).limit)))


@bp.function_name("monthly_training")
@bp.timer_trigger(
    arg_name="timer", schedule="%TRAINING_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def monthly_training(timer: func.TimerRequest) -> None:
    """Start the same job as POST /train, unless a timer job is still running."""
    with worker_deadline():
        job = services.trainer().start_scheduled()
    log.info("scheduled training", extra={"job_id": job.job_id if job else None})


@bp.function_name("training_worker")
@bp.queue_trigger(arg_name="msg", queue_name="training", connection="AzureWebJobsStorage")
def training_worker(msg: func.QueueMessage) -> None:
    """Plan a job, train one (spec, partition) unit, or finalize a job."""
    with worker_deadline():
        services.trainer().handle(queue_json(msg), msg.dequeue_count or 1, msg.id)


@bp.function_name("training_poison")
@bp.queue_trigger(arg_name="msg", queue_name="training-poison", connection="AzureWebJobsStorage")
def training_poison(msg: func.QueueMessage) -> None:
    """A message that failed every retry: mark its unit (or job) failed so the job ends."""
    with worker_deadline():
        services.trainer().give_up(queue_json(msg), "gave up after repeated failures")
