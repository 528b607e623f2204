"""Issue 16 items 1 and 2: a storage failure at an exact step of a job never strands it.

Each test fails one queue send at the step named, then lets the queue redeliver, and
asserts the job ends, every unit ran once, and nothing is left half-written.
"""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.fault.conftest import ROOMS, pump, put_spec, rooms_frame

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def admin(host: Any) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=host.url, timeout=60)
    return client, bearer(login(client, ADMIN, ADMIN_PASSWORD))


def count_trainings(runner: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times each unit trained (its outputs staged). One partition per unit
    here (a row budget of 1), so unit and partition are the same thing."""
    runner.unit_rows = 1
    seen: dict[str, int] = {}
    original = type(runner)._stage_outputs

    def counting(self, job_id, spec, unit, files=None, record=None):
        seen[unit.unit_id] = seen.get(unit.unit_id, 0) + 1
        return original(self, job_id, spec, unit, files, record)

    monkeypatch.setattr(type(runner), "_stage_outputs", counting)
    return seen


def assert_clean_success(runner: Any, job_id: str, name: str, trained: dict[str, int]) -> None:
    from shared.http import current_services

    job = runner.jobs.get(job_id)
    assert job.status == "succeeded", job
    assert job.done_units == job.total_units == ROOMS
    assert sorted(trained.values()) == [1] * ROOMS, trained  # every unit trained once
    assert [v.version for v in current_services().model_registry.get_model(name).versions] == [1]
    assert not list(runner.staging.list_blobs(name_starts_with=f"{job_id}/"))


def test_plan_that_fails_while_dispatching_is_finished_by_its_redelivery(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    name = put_spec(admin)
    # Send 1 is the plan (from start), 2.. the units: the second unit's send fails.
    runner = trainer_on(lambda n, message: n == 3)
    trained = count_trainings(runner, monkeypatch)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    failed = pump(runner, private_queue)
    assert [m["kind"] for m in failed] == ["plan"]
    assert_clean_success(runner, job.job_id, name, trained)


def test_finalize_send_that_fails_is_retried_by_the_last_units_redelivery(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    name = put_spec(admin)
    state = {"failed": False}

    def fail_first_finalize(n: int, message: dict[str, Any]) -> bool:
        if message["kind"] == "finalize" and not state["failed"]:
            state["failed"] = True
            return True
        return False

    runner = trainer_on(fail_first_finalize)
    trained = count_trainings(runner, monkeypatch)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    failed = pump(runner, private_queue)
    assert [m["kind"] for m in failed] == ["unit"] and state["failed"]
    assert_clean_success(runner, job.job_id, name, trained)


def test_a_duplicate_of_a_running_unit_is_dropped_and_the_watchdog_redrives_a_dead_one(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    from shared.jobs.queue_job import watch

    name = put_spec(admin)
    runner = trainer_on(lambda n, message: False)
    trained = count_trainings(runner, monkeypatch)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan: four unit messages
    # Another message's delivery claimed unit 0, then its worker died (no redelivery).
    unit = runner.jobs.unit(job.job_id, f"{name}~000000")
    assert runner.jobs.set_unit(unit, status="running", owner="a-message-whose-worker-died")
    pump(runner, private_queue)
    assert sorted(trained) == [f"{name}~{i:06d}" for i in (1, 2, 3)]  # unit 0 not run twice
    assert runner.jobs.get(job.job_id).status == "running"
    report = watch(runner, stall_seconds=600, max_redrives=3)
    assert job.job_id not in report.redriven  # still recent: left alone
    report = watch(runner, stall_seconds=0, max_redrives=3)
    assert job.job_id in report.redriven
    pump(runner, private_queue)
    assert_clean_success(runner, job.job_id, name, trained)


def test_a_unit_whose_worker_died_mid_training_is_taken_over_by_its_redelivery(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    """A host restart mid-job: the message comes back with its id, the unit resumes."""
    name = put_spec(admin)
    runner = trainer_on(lambda n, message: False)
    trained = count_trainings(runner, monkeypatch)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    [message] = private_queue.receive_messages(max_messages=1, visibility_timeout=60)
    unit_id = json.loads(message.content)["unit_id"]
    unit = runner.jobs.unit(job.job_id, unit_id)
    # The worker claimed it and died while training; the host makes the message visible.
    assert runner.jobs.set_unit(unit, status="running", owner=message.id)
    private_queue.update_message(message, visibility_timeout=0)
    pump(runner, private_queue)
    assert_clean_success(runner, job.job_id, name, trained)


def test_the_watchdog_fails_a_job_that_does_not_move_after_its_redrives(
    admin, private_queue, trainer_on
) -> None:
    from shared.jobs.queue_job import watch

    name = put_spec(admin)
    runner = trainer_on(lambda n, message: False)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)
    private_queue.clear_messages()  # the unit messages are lost
    report = watch(runner, stall_seconds=0, max_redrives=1)
    assert report.redriven == [job.job_id]
    private_queue.clear_messages()  # lost again
    report = watch(runner, stall_seconds=0, max_redrives=1)
    assert report.failed == [job.job_id]
    ended = runner.jobs.get(job.job_id)
    assert ended.status == "failed" and "watchdog" in (ended.error or ""), ended
    assert all(r.status == "failed" for r in ended.results)
    assert not list(runner.staging.list_blobs(name_starts_with=f"{job.job_id}/"))


# --- batch scoring -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scoring_model(admin) -> str:
    """A trained model with a 2,000-row scoring dataset in four row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.http import current_services
    from tests.e2e.conftest import wait_for

    client, headers = admin
    name = put_spec(admin, partitioned=False)
    r = client.post("/train", headers=headers, json={"specs": [name]})
    assert wait_for(client, headers, r.headers["location"])["status"] == "succeeded"
    frame = rooms_frame(500, seed=9).drop(columns=["busy"])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, row_group_size=500)
    current_services().storage.container("scoring").upload_blob(
        f"{name}/drop.parquet", buffer.getvalue(), overwrite=True
    )
    return name


def count_scorings(runner: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    from shared.prediction.batch import service as batch_service

    monkeypatch.setattr(batch_service, "CHUNK_ROWS", 500)  # four chunks
    seen: dict[str, int] = {}
    original = type(runner)._score_chunk

    def counting(self, target, chunk, part):
        seen[chunk.chunk_id] = seen.get(chunk.chunk_id, 0) + 1
        return original(self, target, chunk, part)

    monkeypatch.setattr(type(runner), "_score_chunk", counting)
    return seen


def assert_scored_once(runner: Any, job_id: str, scored: dict[str, int]) -> None:
    job = runner.jobs.get(job_id)
    assert job.status == "succeeded", job
    assert job.rows_scored == 2_000 and job.rows_failed == 0
    assert sorted(scored.values()) == [1, 1, 1, 1], scored
    name = job.model
    parts = [b.name for b in runner.outputs.list_blobs(name_starts_with=f"{name}/{job_id}/")]
    assert parts == []  # the part blobs were removed by the fan-in


@pytest.mark.parametrize(
    "step",
    ["chunk dispatch", "finalize send", "duplicate of a running chunk"],
)
def test_batch_scoring_recovers_at_each_step(
    admin, scoring_model, private_queue, scorer_on, monkeypatch, step
) -> None:
    from shared.jobs.queue_job import watch
    from shared.prediction.batch.schemas import BatchScoreRequest

    state = {"failed": False}

    def fail(n: int, message: dict[str, Any]) -> bool:
        if state["failed"]:
            return False
        hit = (step == "chunk dispatch" and n == 3) or (
            step == "finalize send" and message["kind"] == "finalize"
        )
        state["failed"] = hit
        return hit

    runner = scorer_on(fail)
    scored = count_scorings(runner, monkeypatch)
    job, _ = runner.start(BatchScoreRequest(model=scoring_model), by=ADMIN)
    if step == "duplicate of a running chunk":
        pump(runner, private_queue, rounds=1, drain=False)
        chunk = runner.jobs.chunk(job.job_id, "000-000000")
        assert runner.jobs.set_chunk(chunk, status="running", owner="a-dead-worker's-message")
        pump(runner, private_queue)
        assert "000-000000" not in scored and runner.jobs.get(job.job_id).status == "running"
        assert job.job_id in watch(runner, stall_seconds=0, max_redrives=3).redriven
    failed = pump(runner, private_queue)
    assert len(failed) == (0 if step.startswith("duplicate") else 1)
    assert_scored_once(runner, job.job_id, scored)


def test_a_cancelled_batch_scoring_job_ends_cancelled_with_no_output(
    admin, scoring_model, private_queue, scorer_on, monkeypatch
) -> None:
    """POST /predict/jobs/{id}/cancel over HTTP: chunks not started are skipped, the one
    running drops its part, no output is written, the job says who cancelled it."""
    from shared.prediction.batch.schemas import BatchScoreRequest

    client, headers = admin
    runner = scorer_on(lambda n, message: False)
    scored = count_scorings(runner, monkeypatch)
    original = type(runner)._score_chunk

    def cancel_while_scoring(self, target, chunk, part):
        stats = original(self, target, chunk, part)
        r = client.post(f"/predict/jobs/{chunk.job_id}/cancel", headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
        return stats

    monkeypatch.setattr(type(runner), "_score_chunk", cancel_while_scoring)
    job, _ = runner.start(BatchScoreRequest(model=scoring_model), by=ADMIN)
    pump(runner, private_queue)
    r = client.get(f"/predict/jobs/{job.job_id}", headers=headers)
    assert r.status_code == 200, r.text
    ended = r.json()
    assert ended["status"] == "cancelled" and ended["cancelled_by"] == ADMIN, ended
    assert ended["outputs"] == [] and len(scored) == 1  # one chunk ran, the others never
    assert ended["chunks"]["cancelled"] == 4 and ended["chunks"]["succeeded"] == 0
    listed = runner.outputs.list_blobs(name_starts_with=f"{scoring_model}/{job.job_id}")
    assert [b.name for b in listed] == []
    again = client.post(f"/predict/jobs/{job.job_id}/cancel", headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert client.post("/predict/jobs/nosuchjob/cancel", headers=headers).status_code == 404
