"""The skeleton every queue-driven job shares: plan -> units -> fan-in, each step resumable.

Queue delivery is at-least-once and any storage call may fail, so every step is written
to finish whatever an earlier delivery of the same message left undone:

* **plan** records the units, then *dispatches* them (one message each) and only then
  marks the job ``dispatched``. A redelivered plan message of a job that is not yet
  dispatched sends every unit still ``queued`` again (a unit that already ran ignores
  the duplicate, see :func:`claim`).
* **unit**: :func:`claim` decides whether this delivery runs the unit. ``queued`` is
  claimed under an ETag guard; ``running`` owned by the *same* message id means the
  worker that had it died and the host redelivered it (take over); ``running`` owned by
  another message is a duplicate (drop it), so a unit never trains or scores twice.
* **fan-in**: :meth:`QueueJob.fan_in` adds the finished unit to the job's counter once
  (the ``counted`` flag), then starts the fan-in when the count is complete. A
  redelivery of a counted unit reads the counter again and starts the fan-in again when
  it is complete: a failed ``finalize`` send is retried, and finalize is idempotent.
* a **watchdog** (:func:`watch`, run by a timer) finds jobs with no progress for a while
  and re-drives them (:meth:`QueueJob.redrive`), or fails them with a reason after a few
  fruitless re-drives, so no job stays ``running`` forever.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from shared.observability import get_logger
from shared.tables import iso, parse_iso, utcnow

log = get_logger("jobs")


class _Queue(Protocol):
    def send_message(self, content: Any, **kwargs: Any) -> Any: ...


def claim(
    status: str,
    owner: str | None,
    message_id: str | None,
    set_running: Callable[[], bool],
) -> bool:
    """Whether this delivery runs a non-terminal unit (``set_running`` is ETag-guarded).

    Without a message id (a direct call) the unit is taken when the guard allows it.
    """
    if status == "running" and message_id and owner and owner != message_id:
        return False  # another message's delivery runs it: a duplicate
    return set_running()


def row_timestamp(entity: Any) -> datetime | None:
    """When a Table row was last written (its service-set Timestamp)."""
    meta = getattr(entity, "metadata", None) or {}
    stamp = meta.get("timestamp")
    return stamp if isinstance(stamp, datetime) else None


class QueueJob:
    """Base of a queue-driven job kind (training, batch scoring).

    Subclasses set ``queue`` and implement :meth:`active_jobs`, :meth:`last_progress`,
    :meth:`redrive` and :meth:`fail_stalled` for the watchdog.
    """

    queue: _Queue
    kind: str = "job"

    def send(self, message: dict[str, Any]) -> None:
        self.queue.send_message(json.dumps(message))

    def dispatch(self, messages: Iterable[dict[str, Any]], mark_dispatched: Callable[[], Any]):
        """Send every message, then record that they were all sent (never before)."""
        for message in messages:
            self.send(message)
        mark_dispatched()

    def fan_in(
        self,
        counted: bool,
        add_done: Callable[[], tuple[int, int]],
        mark_counted: Callable[[], Any],
        read_counts: Callable[[], tuple[int, int]],
        on_complete: Callable[[], Any],
    ) -> None:
        """Count a finished unit once; run ``on_complete`` whenever the count is complete.

        ``on_complete`` runs again on every redelivery of a counted unit of a complete
        job, so it must be idempotent (send ``finalize``, whose handler checks status).
        """
        if counted:
            done, total = read_counts()
        else:
            done, total = add_done()
            mark_counted()
        if total >= 0 and done >= total:
            on_complete()

    # --- the watchdog's hooks ------------------------------------------------------------
    def active_jobs(self) -> list[dict[str, Any]]:
        """Raw rows of the jobs still ``queued`` or ``running``."""
        raise NotImplementedError

    def last_progress(self, job: dict[str, Any]) -> datetime:
        """When the job (or any of its units) last changed, watchdog writes aside."""
        raise NotImplementedError

    def redrive(self, job: dict[str, Any], stale_before: datetime) -> int:
        """Send again what should be in flight; units running since before
        ``stale_before`` are reset to queued first. The number of messages sent."""
        raise NotImplementedError

    def fail_stalled(self, job: dict[str, Any], reason: str) -> None:
        """End the job as failed with ``reason``; clean up what it staged."""
        raise NotImplementedError

    def mark_redriven(self, job_id: str, redrives: int) -> None:
        raise NotImplementedError


@dataclass
class WatchReport:
    kind: str
    checked: int = 0
    redriven: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def watch(
    runner: QueueJob,
    stall_seconds: float,
    max_redrives: int,
    now: datetime | None = None,
) -> WatchReport:
    """Re-drive every active job with no progress for ``stall_seconds``; fail it once it
    has been re-driven ``max_redrives`` times without progress since."""
    now = now or utcnow()
    stall = timedelta(seconds=stall_seconds)
    report = WatchReport(runner.kind)
    for job in runner.active_jobs():
        report.checked += 1
        job_id = job["RowKey"]
        try:
            last = runner.last_progress(job)
            redriven_at = parse_iso(job["redriven_at"]) if job.get("redriven_at") else None
            if now - last < stall or (redriven_at and now - redriven_at < stall):
                continue
            # Re-drives count only while nothing moves: progress since resets the count.
            redrives = int(job.get("redrives") or 0) if redriven_at and last <= redriven_at else 0
            if redrives >= max_redrives:
                reason = (
                    f"no progress for {int((now - last).total_seconds())} s after"
                    f" {redrives} re-drives (watchdog)"
                )
                runner.fail_stalled(job, reason)
                report.failed.append(job_id)
                log.error("stalled job failed", extra={"job_id": job_id, "kind": runner.kind})
                continue
            sent = runner.redrive(job, now - stall)
            runner.mark_redriven(job_id, redrives + 1)
            report.redriven.append(job_id)
            log.warning(
                "stalled job re-driven",
                extra={"job_id": job_id, "kind": runner.kind, "messages": sent},
            )
        except Exception:
            # One broken job must not stop the watchdog from looking at the others.
            log.exception("watchdog could not handle a job", extra={"job_id": job_id})
    return report


def redrive_fields(redrives: int) -> dict[str, Any]:
    return {"redrives": redrives, "redriven_at": iso(utcnow())}
