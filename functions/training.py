"""Training: specs, POST /train (ADF's async pattern), jobs, the monthly timer, the queue."""

import azure.functions as func

from shared.container import Services
from shared.http import Call, Routes, empty_response, json_response
from shared.http.async_jobs import (
    JobAccepted,
    NothingToDo,
    accepted,
    job_status,
    nothing_to_do,
    queue_json,
)
from shared.names import check_name
from shared.observability import get_logger
from shared.resources import TRAINING_POISON, Queues
from shared.training.jobs import TERMINAL, Job, JobPage
from shared.training.orchestrator import NothingToTrain
from shared.training.schemas import (
    JobsQuery,
    SpecList,
    TrainingSpec,
    TrainingSpecBody,
    TrainRequest,
)

bp = func.Blueprint()
routes = Routes(bp, tag="training")
log = get_logger("training")


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
    call.services.trainer.validate_spec(body)
    spec, created = call.services.spec_store.put(name, body, call.user.username)
    return json_response(
        spec, status=201 if created else 200, headers={"Location": f"/train/specs/{name}"}
    )


@routes.get("train/specs", auth="train", response=SpecList, audited=False)
def list_specs(call: Call) -> func.HttpResponse:
    """Every training spec."""
    return json_response(SpecList(items=call.services.spec_store.all()))


@routes.get("train/specs/{name}", auth="train", response=TrainingSpec, errors=(404,), audited=False)
def get_spec(call: Call) -> func.HttpResponse:
    """One training spec."""
    return json_response(call.services.spec_store.get(call.param("name")))


@routes.delete("train/specs/{name}", auth="train", status=204, errors=(404,))
def delete_spec(call: Call) -> func.HttpResponse:
    """Delete a spec (its registered versions stay)."""
    call.services.spec_store.delete(call.param("name"))
    return empty_response(204)


@routes.post(
    "train",
    auth="train",
    body=TrainRequest,
    response=JobAccepted,
    status=202,
    also=((200, NothingToDo),),
    errors=(404, 409),
    rate_group="train",
)
def train(call: Call) -> func.HttpResponse:
    """Train every enabled spec (or those named): 202 + Location to poll (ADF async pattern)."""
    body = call.json(TrainRequest, allow_empty=True)
    for name in body.specs or []:
        check_name(name, "spec")
    try:
        job, replayed = call.services.trainer.start(
            body.specs,
            trigger="http",
            by=call.user.username,
            idempotency_key=call.req.headers.get("idempotency-key"),
        )
    except NothingToTrain as nothing:
        return nothing_to_do(nothing.detail)
    return accepted(job.job_id, job.status, f"/train/jobs/{job.job_id}", replayed)


@routes.get("train/jobs/{id}", auth="train", response=Job, errors=(404,), audited=False)
def get_job(call: Call) -> func.HttpResponse:
    """A job's progress (one storage read) while it runs: 202; 200 with per-partition
    results once finished."""
    job = call.services.job_store.get(call.param("id"))
    return job_status(job, job.status in TERMINAL, f"/train/jobs/{job.job_id}")


@routes.post("train/jobs/{id}/cancel", auth="train", response=Job, errors=(404, 409), status=200)
def cancel_job(call: Call) -> func.HttpResponse:
    """Cancel a queued or running job: nothing is registered; it ends `cancelled`."""
    return json_response(call.services.trainer.cancel(call.param("id"), call.user.username))


@routes.get("train/jobs", auth="train", query=JobsQuery, response=JobPage, audited=False)
def list_jobs(call: Call) -> func.HttpResponse:
    """Recent jobs, newest first (without per-unit results)."""
    return json_response(JobPage(items=call.services.job_store.recent(call.query(JobsQuery).limit)))


@routes.timer("monthly_training", schedule="%TRAINING_SCHEDULE%")
def monthly_training(services: Services, timer: func.TimerRequest) -> None:
    """Start the same job as POST /train, unless a timer job is still running."""
    job = services.trainer.start_scheduled()
    log.info("scheduled training", extra={"job_id": job.job_id if job else None})


@routes.queue("training_worker", queue=Queues.TRAINING)
def training_worker(services: Services, msg: func.QueueMessage) -> None:
    """Plan a job, train one (spec, partition) unit, or finalize a job."""
    services.trainer.handle(queue_json(msg), msg.dequeue_count or 1, msg.id)


@routes.queue("training_poison", queue=TRAINING_POISON)
def training_poison(services: Services, msg: func.QueueMessage) -> None:
    """A message that failed every retry: mark its unit (or job) failed so the job ends."""
    services.trainer.give_up(queue_json(msg), "gave up after repeated failures")
