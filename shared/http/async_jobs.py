"""The asynchronous request-reply pattern ADF polls (202 + Location + Retry-After), and
the JSON body of queue messages, shared by training and batch scoring."""

from __future__ import annotations

import json
from typing import Any, Literal

import azure.functions as func
from pydantic import BaseModel

from shared.errors import ValidationFailed
from shared.http.responses import json_response

POLL_SECONDS = "10"


class JobAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str


def accepted(job_id: str, status: str, status_url: str, replayed: bool) -> func.HttpResponse:
    """202 with the URL to poll; a replayed Idempotency-Key says so."""
    headers = {"Location": status_url, "Retry-After": POLL_SECONDS}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response(
        JobAccepted(job_id=job_id, status=status, status_url=status_url), 202, headers
    )


class NothingToDo(BaseModel):
    """A bulk start (all enabled specs, all scoring datasets) that matched nothing."""

    job_id: None = None
    status: Literal["skipped"] = "skipped"
    detail: str


def nothing_to_do(detail: str) -> func.HttpResponse:
    """200, not 4xx: a scheduled ADF run on a fresh install has simply nothing to do (ADF
    fails the pipeline on any 4xx). There is no job, so there is no Location to poll."""
    return json_response(NothingToDo(detail=detail), 200)


def job_status(job: BaseModel, finished: bool, status_url: str) -> func.HttpResponse:
    """200 once the job has finished, 202 (poll again) while it is queued or running."""
    if finished:
        return json_response(job)
    return json_response(job, 202, {"Retry-After": POLL_SECONDS, "Location": status_url})


def queue_json(msg: func.QueueMessage) -> dict[str, Any]:
    """A queue message's JSON object; anything else is refused (and ends in poison)."""
    try:
        body = json.loads(msg.get_body())
    except ValueError:
        raise ValidationFailed("A queue message is not JSON.") from None
    if not isinstance(body, dict):
        raise ValidationFailed("A queue message is not a JSON object.")
    return body
