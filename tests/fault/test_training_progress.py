"""Issue 10, training: units of several partitions, progress on the job row, the
``registering`` status, a partition that crashes alone, and cancel (over HTTP).

The jobs run step by step through a private queue pumped by the test (tests/fault
helpers); every status read and cancel goes through the real HTTP path and Azurite.
"""

from __future__ import annotations

import io
import secrets
from typing import Any

import httpx
import numpy as np
import pytest
from azure.storage.blob import ContainerClient

from tests.conftest import ADMIN, ADMIN_PASSWORD, bearer, login
from tests.fault.conftest import pump

pytestmark = pytest.mark.fault


def rooms_frame(rooms: int, rows: int, seed: int = 3):
    import pandas as pd

    rng = np.random.default_rng(seed)
    hour = rng.integers(0, 24, rooms * rows)
    occupancy = rng.poisson(2 + 3 * ((hour >= 9) & (hour < 17)))
    return pd.DataFrame(
        {
            "room": np.repeat([f"room-{i:03d}" for i in range(rooms)], rows),
            "hour": hour,
            "co2": 420 + 45 * occupancy + rng.normal(0, 60, rooms * rows),
            "busy": np.where(occupancy > 3, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def admin(host: Any) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(base_url=host.url, timeout=60)
    return client, bearer(login(client, ADMIN, ADMIN_PASSWORD))


@pytest.fixture(autouse=True)
def units_by_row_budget_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Units cut by the row budget alone (not spread to 8 units), so tests know them."""
    monkeypatch.setattr("shared.training.staging.SPREAD_UNITS", 1)


def put_spec(admin, frame, **spec: Any) -> str:
    client, headers = admin
    name = f"prog-{secrets.token_hex(3)}"
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    r = client.put(
        f"/datasets/{name}",
        headers={**headers, "Content-Type": "text/csv"},
        content=buffer.getvalue().encode(),
    )
    assert r.status_code == 201, r.text
    body = {
        "dataset": name,
        "target": "busy",
        "algorithm": "logistic_regression",
        "partition_by": "room",
        "min_rows": 10,
        "enabled": False,
        **spec,
    }
    assert client.put(f"/train/specs/{name}", headers=headers, json=body).status_code == 201
    return name


def status(admin, job_id: str) -> dict[str, Any]:
    client, headers = admin
    r = client.get(f"/train/jobs/{job_id}", headers=headers)
    assert r.status_code in (200, 202), r.text
    return r.json()


def versions(name: str) -> list[int]:
    from shared.errors import NotFound
    from shared.http import current_services

    try:
        return [v.version for v in current_services().model_registry.get_model(name).versions]
    except NotFound:
        return []


def test_many_small_partitions_train_in_few_units_and_register_one_version(
    admin, private_queue, trainer_on
) -> None:
    name = put_spec(admin, rooms_frame(120, 30))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 300  # 10 rooms of 30 rows per unit
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue)
    done = status(admin, job.job_id)
    assert done["status"] == "succeeded", done
    assert done["total_units"] == done["done_units"] == 12  # not 120 queue messages
    assert len(done["results"]) == 120
    assert {r["status"] for r in done["results"]} == {"succeeded"}
    assert len({r["version"] for r in done["results"]}) == 1
    progress = done["progress"]
    assert progress["partitions_total"] == progress["partitions_done"] == 120
    assert progress["rows_trained"] == progress["rows_total"] == 120 * 30
    client, headers = admin
    manifest = client.get(f"/models/{name}/versions/1/download", headers=headers).json()
    assert set(manifest["partitions"]) == {f"room-{i:03d}" for i in range(120)}
    assert (
        client.get(f"/models/{name}/versions/1/verify", headers=headers).json()["status"] == "valid"
    )
    assert not list(runner.staging.list_blobs(name_starts_with=f"{job.job_id}/"))


def test_a_partition_that_crashes_inside_a_unit_fails_alone(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    from shared.training import orchestrator

    name = put_spec(admin, rooms_frame(6, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 1_000  # all six rooms in one unit
    original = orchestrator.Trainer._fit

    def crashing(self, spec, frame):
        if frame["room"].iloc[0] == "room-002":
            raise RuntimeError("injected crash")  # not a TrainingError: retried first
        return original(self, spec, frame)

    monkeypatch.setattr(orchestrator.Trainer, "_fit", crashing)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    failed = pump(runner, private_queue)
    # The unit's delivery raised until its last retry, then the partition failed alone.
    assert [m["kind"] for m in failed] == ["unit"] * (runner.max_dequeue_count - 1)
    done = status(admin, job.job_id)
    assert done["status"] == "partially_failed" and done["total_units"] == 1, done
    bad = [r for r in done["results"] if r["status"] == "failed"]
    assert [r["partition"] for r in bad] == ["room-002"]
    assert "RuntimeError: injected crash" in bad[0]["error"]
    assert sum(r["status"] == "succeeded" for r in done["results"]) == 5
    assert done["progress"]["partitions_failed"] == 1
    assert done["progress"]["partitions_done"] == 5
    client, headers = admin
    manifest = client.get(f"/models/{name}/versions/1/download", headers=headers).json()
    assert len(manifest["partitions"]) == 5 and "room-002" not in manifest["partitions"]


def test_status_reads_show_progress_then_registering(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    from shared.training import orchestrator

    name = put_spec(admin, rooms_frame(8, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 80  # two rooms per unit: four units
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    queued = status(admin, job.job_id)
    assert queued["status"] == "queued" and queued["progress"]["partitions_total"] == 0
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    planned = status(admin, job.job_id)
    assert planned["status"] == "running" and planned["total_units"] == 4
    assert planned["done_units"] == 0 and planned["results"] == []
    assert planned["progress"]["partitions_total"] == 8
    assert planned["progress"]["rows_total"] == 320
    assert planned["progress"]["elapsed_seconds"] >= 0

    [message] = private_queue.receive_messages(max_messages=1, visibility_timeout=60)
    import json

    runner.handle(json.loads(message.content), 1, message.id)
    private_queue.delete_message(message)
    one = status(admin, job.job_id)
    assert one["status"] == "running" and one["done_units"] == 1
    assert one["progress"]["partitions_done"] == 2 and one["progress"]["rows_trained"] == 80
    assert one["progress"]["eta_seconds"] is not None and one["progress"]["eta_seconds"] >= 0

    seen: list[dict[str, Any]] = []
    original = orchestrator.Trainer._register

    def watching(self, *args: Any) -> Any:
        seen.append(status(admin, job.job_id))
        return original(self, *args)

    monkeypatch.setattr(orchestrator.Trainer, "_register", watching)
    pump(runner, private_queue)
    assert [s["status"] for s in seen] == ["registering"]
    assert seen[0]["done_units"] == seen[0]["total_units"] == 4
    done = status(admin, job.job_id)
    assert done["status"] == "succeeded" and len(done["results"]) == 8
    assert done["progress"]["eta_seconds"] is None


def test_a_cancelled_job_ends_cancelled_with_nothing_registered(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    from shared.training import orchestrator

    client, headers = admin
    name = put_spec(admin, rooms_frame(8, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 160  # four rooms per unit: two units
    from shared.training import unit_training

    monkeypatch.setattr(unit_training, "CANCEL_CHECK_SECONDS", 0.0)
    original = orchestrator.Trainer._fit
    fits: list[str] = []

    def cancel_mid_unit(self, spec, frame):
        fits.append(frame["room"].iloc[0])
        if len(fits) == 2:  # the user cancels while the first unit trains
            r = client.post(f"/train/jobs/{job.job_id}/cancel", headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "cancelled" and r.json()["cancelled_by"] == ADMIN
        return original(self, spec, frame)

    monkeypatch.setattr(orchestrator.Trainer, "_fit", cancel_mid_unit)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue)
    # The running unit stopped at its next partition; the other never started.
    assert fits == ["room-000", "room-001"]
    done = status(admin, job.job_id)
    assert done["status"] == "cancelled" and done["cancelled_by"] == ADMIN, done
    assert {r["status"] for r in done["results"]} == {"cancelled"}
    assert versions(name) == []
    assert not list(runner.staging.list_blobs(name_starts_with=f"{job.job_id}/"))
    # Nor anything left in the version reserved for the job: what the running unit wrote
    # (before and after the cancel) is gone.
    assert not list(runner.registry.container.list_blobs(name_starts_with=f"{name}/"))
    # Cancelling again is a no-op; a finished job cannot be cancelled.
    again = client.post(f"/train/jobs/{job.job_id}/cancel", headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    other = put_spec(admin, rooms_frame(2, 40))
    finished, _ = runner.start([other], trigger="http", by=ADMIN)
    monkeypatch.setattr(orchestrator.Trainer, "_fit", original)
    pump(runner, private_queue)
    late = client.post(f"/train/jobs/{finished.job_id}/cancel", headers=headers)
    assert late.status_code == 409 and late.json()["code"] == "JOB_NOT_CANCELLABLE"
    assert client.post("/train/jobs/nosuchjob/cancel", headers=headers).status_code == 404


def test_cancel_needs_the_train_scope(admin, make_user) -> None:
    client, _ = admin
    _, _, _, headers = make_user(["user"])
    assert client.post("/train/jobs/123/cancel", headers=headers).status_code == 403


def test_units_write_into_the_reserved_version_and_the_fan_in_moves_no_model_bytes(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    """Each unit uploads its partitions' files straight into the version reserved when the
    job was planned; the fan-in reads the units' small records and writes the manifest.
    (Before, every file went up to staging in a unit bundle, down to the fan-in and up
    again into the version: three passes through storage, two of them in the fan-in.)"""
    import json

    from shared.training import orchestrator

    name = put_spec(admin, rooms_frame(120, 30))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 90  # 3 rooms per unit, the first and the last two of one room: 42 units
    moved = {"unit": 0, "fan_in": 0, "fan_in_read": 0}
    phase = ["unit"]
    read, upload = runner._read, runner.registry._upload
    register = orchestrator.Trainer._register

    def reading(path: str) -> bytes:
        data = read(path)
        moved["fan_in_read"] += len(data)
        return data

    def uploading(blob: str, data: bytes, role: str, fmt: str | None) -> Any:
        if blob.startswith(f"{name}/"):
            moved[phase[0]] += len(data)
        return upload(blob, data, role, fmt)

    def registering(self, *args: Any) -> Any:
        phase[0] = "fan_in"
        return register(self, *args)

    container_upload = ContainerClient.upload_blob

    def uploading_segment(container: ContainerClient, blob: str, data: Any, **kwargs: Any) -> Any:
        if blob.startswith(f"{name}/1/packs/"):  # the units' packs (the rest: _upload)
            moved[phase[0]] += len(data)
        return container_upload(container, blob, data, **kwargs)

    monkeypatch.setattr(runner, "_read", reading)
    monkeypatch.setattr(runner.registry, "_upload", uploading)
    monkeypatch.setattr(ContainerClient, "upload_blob", uploading_segment)
    monkeypatch.setattr(orchestrator.Trainer, "_register", registering)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue)
    assert status(admin, job.job_id)["status"] == "succeeded"
    assert json.loads(runner.jobs.raw(job.job_id)["reserved_versions"]) == {name: 1}
    client, headers = admin
    manifest = client.get(f"/models/{name}/versions/1/download", headers=headers).json()
    assert len(manifest["partitions"]) == 120
    assert (
        client.get(f"/models/{name}/versions/1/verify", headers=headers).json()["status"] == "valid"
    )
    partition_bytes = sum(f["size_bytes"] for f in manifest["files"].values())
    stored_bytes = sum(f.get("stored_bytes", f["size_bytes"]) for f in manifest["files"].values())
    assert moved["unit"] == stored_bytes  # every partition file, written once, by units
    # ... the skops archives zstd-compressed (shared.registry.compression; these rooms'
    # ONNX graphs are too small to be worth it): the files take a fraction of their size.
    archives = [f for r, f in manifest["files"].items() if r.endswith(".skops")]
    assert len(archives) == 120 and all(f.get("encoding") == "zstd" for f in archives)
    assert stored_bytes < partition_bytes / 2
    # ... each unit into one pack of its own: 42 blobs (one segment each), not 480.
    packs = {f["pack"] for f in manifest["files"].values()}
    assert packs == {f"packs/u{i:06d}-000000.bin" for i in range(42)}
    written = runner.registry.container.list_blobs(name_starts_with=f"{name}/1/")
    assert sorted(b.name for b in written) == sorted(
        [f"{name}/1/model.json", *(f"{name}/1/{p}" for p in packs)]
    )
    # The fan-in wrote the manifest alone and read records, not models.
    manifest_blob = runner.registry.container.download_blob(f"{name}/1/model.json").readall()
    assert moved["fan_in"] == len(manifest_blob), moved
    assert moved["fan_in_read"] < partition_bytes / 5, moved
    assert not list(runner.staging.list_blobs(name_starts_with=f"{job.job_id}/"))


class WorkerDied(BaseException):
    """The worker process ends mid-unit (out of memory, a host recycle): no except runs."""


def test_files_of_a_unit_that_died_part_way_are_not_left_in_the_version(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    import json

    from shared.training import orchestrator

    name = put_spec(admin, rooms_frame(4, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 80  # two rooms per unit
    original = orchestrator.Trainer._stage_outputs

    def dying(self, job_id, spec, unit, *args, **kwargs):
        if unit.unit_id.endswith("~000000"):  # its pack is written by now
            raise WorkerDied
        return original(self, job_id, spec, unit, *args, **kwargs)

    monkeypatch.setattr(orchestrator.Trainer, "_stage_outputs", dying)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    container = runner.registry.container
    first = f"{name}/1/packs/u000000-"  # room-000 and room-001's files
    for message in private_queue.receive_messages(max_messages=16, visibility_timeout=60):
        body = json.loads(message.content)
        try:
            runner.handle(body, 1, message.id)
        except WorkerDied:
            assert list(container.list_blobs(name_starts_with=first))  # written, then died
            runner.give_up(body, "the worker died")  # what the host does after the retries
        private_queue.delete_message(message)
    pump(runner, private_queue)
    done = status(admin, job.job_id)
    assert done["status"] == "partially_failed", done
    client, headers = admin
    manifest = client.get(f"/models/{name}/versions/1/download", headers=headers).json()
    assert sorted(manifest["partitions"]) == ["room-002", "room-003"]
    assert not list(container.list_blobs(name_starts_with=first))
    assert (
        client.get(f"/models/{name}/versions/1/verify", headers=headers).json()["status"] == "valid"
    )


def test_the_orphan_sweep_keeps_the_files_of_a_running_jobs_reserved_version(
    admin, private_queue, trainer_on
) -> None:
    import json
    from datetime import timedelta

    name = put_spec(admin, rooms_frame(4, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 80
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    [message, _] = private_queue.receive_messages(max_messages=16, visibility_timeout=60)
    runner.handle(json.loads(message.content), 1, message.id)  # one unit of two
    private_queue.delete_message(message)
    registry, container = runner.registry, runner.registry.container

    def written() -> list[str]:
        return [b.name for b in container.list_blobs(name_starts_with=f"{name}/")]

    assert written() and runner.reserved_versions() >= {(name, 1)}
    # Old enough to sweep, but the job still runs: kept (the nightly timer passes them).
    registry.sweep_orphans(older_than=timedelta(seconds=-60), keep=runner.reserved_versions())
    assert written()
    client, headers = admin
    assert client.post(f"/train/jobs/{job.job_id}/cancel", headers=headers).status_code == 200
    assert written() == []  # the cancel dropped them
    assert runner.reserved_versions().isdisjoint({(name, 1)})
    pump(runner, private_queue)
    assert versions(name) == []


def test_a_job_planned_without_a_reserved_version_still_trains_its_partitions(
    admin, private_queue, trainer_on, monkeypatch
) -> None:
    """A job planned by the deployment before reserved versions (no such field on its row)
    and still running after a deploy: its units failed every partition ("reserved no
    version"). The first unit now reserves the version and records it on the job row."""
    import json

    name = put_spec(admin, rooms_frame(4, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 80  # two units
    transition = runner.jobs.transition

    def as_planned_before(job_id: str, allowed: tuple[str, ...], **fields: Any) -> Any:
        fields.pop("reserved_versions", None)  # the previous planner wrote no such field
        return transition(job_id, allowed, **fields)

    monkeypatch.setattr(runner.jobs, "transition", as_planned_before)
    reserve = runner.registry.reserve_version
    monkeypatch.setattr(runner.registry, "reserve_version", lambda n: 0)  # it reserved none
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    assert "reserved_versions" not in runner.jobs.raw(job.job_id)
    reserved: list[int] = []
    monkeypatch.setattr(
        runner.registry, "reserve_version", lambda n: reserved.append(reserve(n)) or reserved[-1]
    )
    pump(runner, private_queue)
    done = status(admin, job.job_id)
    assert done["status"] == "succeeded", done
    assert reserved == [1]  # by the first unit; the second read it from the job row
    assert json.loads(runner.jobs.raw(job.job_id)["reserved_versions"]) == {name: 1}
    client, headers = admin
    manifest = client.get(f"/models/{name}/versions/1/download", headers=headers).json()
    assert sorted(manifest["partitions"]) == [f"room-{i:03d}" for i in range(4)]
    assert (
        client.get(f"/models/{name}/versions/1/verify", headers=headers).json()["status"] == "valid"
    )


def test_two_units_reserving_at_once_agree_on_one_version(admin, private_queue, trainer_on) -> None:
    """The unit whose write to the job row loses the race uses the winner's number."""
    import json

    from azure.data.tables import UpdateMode

    name = put_spec(admin, rooms_frame(2, 40))
    runner = trainer_on(lambda n, message: False)
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    jobs = runner.jobs
    calls: list[int] = []

    def reserve_while_another_unit_records_5() -> int:
        calls.append(1)
        if len(calls) == 1:  # the other unit writes the row between our read and write
            jobs.jobs.update_entity(
                {
                    "PartitionKey": "jobs",
                    "RowKey": job.job_id,
                    "reserved_versions": json.dumps({name: 5}),
                },
                mode=UpdateMode.MERGE,
            )
        return 9

    assert jobs.reserved_version(job.job_id, name, reserve_while_another_unit_records_5) == 5
    assert calls == [1]
    assert jobs.reserved_version(job.job_id, name, lambda: 11) == 5
    assert json.loads(jobs.raw(job.job_id)["reserved_versions"]) == {name: 5}
    pump(runner, private_queue, drain=False)


def test_a_redelivered_unit_removes_its_earlier_segments_first(
    admin, private_queue, trainer_on
) -> None:
    """A delivery that died may have written more segments than the retry will (a
    partition that failed for good this time): the retry removes them before writing, so
    nothing unlisted stays in the version."""
    import json

    name = put_spec(admin, rooms_frame(4, 40))
    runner = trainer_on(lambda n, message: False)
    runner.unit_rows = 80
    job, _ = runner.start([name], trigger="http", by=ADMIN)
    pump(runner, private_queue, rounds=1, drain=False)  # the plan
    container = runner.registry.container
    stale = f"{name}/1/packs/u000000-000007.bin"
    container.upload_blob(stale, b"an earlier delivery's segment")
    for message in private_queue.receive_messages(max_messages=16, visibility_timeout=60):
        runner.handle(json.loads(message.content), 2, message.id)  # the second delivery
        private_queue.delete_message(message)
    pump(runner, private_queue)
    assert status(admin, job.job_id)["status"] == "succeeded"
    written = sorted(b.name for b in container.list_blobs(name_starts_with=f"{name}/1/"))
    assert stale not in written
    assert f"{name}/1/packs/u000000-000000.bin" in written
    client, headers = admin
    assert (
        client.get(f"/models/{name}/versions/1/verify", headers=headers).json()["status"] == "valid"
    )
