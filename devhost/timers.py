"""Timer triggers: one background thread per function, firing on its NCRONTAB schedule."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest

from devhost.ncrontab import NCrontab

log = logging.getLogger("devhost.timer")

# Firing later than this after the scheduled time counts as past due, as the host reports it.
_PAST_DUE_AFTER = timedelta(seconds=5)


class TimerRunner:
    """Runs ``run(TimerRequest)`` on ``schedule``; invocations never overlap (host singleton).

    ``schedule`` None means admin-triggered runs only (``start()`` is then refused).
    A scheduled firing that finds a run still going (e.g. started via the admin endpoint) is
    skipped; explicit ``trigger()`` calls wait for the running invocation instead.
    """

    def __init__(
        self,
        function_name: str,
        schedule: NCrontab | None,
        run: Callable[[TimerRequest], Any],
        run_on_startup: bool = False,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.function_name = function_name
        self.schedule = schedule
        self.run_on_startup = run_on_startup
        self._run = run
        self._now = now
        self._busy = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: datetime | None = None
        self.next_run: datetime | None = None

    def start(self) -> None:
        if self.schedule is None:
            raise ValueError(f"{self.function_name}: no schedule to run on")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, name=f"timer-{self.function_name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def trigger(self, past_due: bool = False) -> None:
        """Run once now (blocking), after any invocation already in progress."""
        with self._busy:
            self._invoke(past_due)

    def _loop(self) -> None:
        if self.run_on_startup:
            self._fire(past_due=False)
        assert self.schedule is not None
        while not self._stop.is_set():
            scheduled = self.schedule.next_after(self._now())
            self.next_run = scheduled
            while not self._stop.is_set():
                remaining = (scheduled - self._now()).total_seconds()
                if remaining <= 0:
                    break
                # Short waits keep us close to wall-clock time even if the clock jumps.
                self._stop.wait(min(remaining, 1.0))
            if self._stop.is_set():
                return
            self._fire(past_due=self._now() - scheduled > _PAST_DUE_AFTER)

    def _fire(self, past_due: bool) -> None:
        if not self._busy.acquire(blocking=False):
            log.warning(
                "%s: previous run still in progress, skipping this firing", self.function_name
            )
            return
        try:
            self._invoke(past_due)
        finally:
            self._busy.release()

    def _invoke(self, past_due: bool) -> None:
        now = self._now()
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": self._last.isoformat() if self._last else None,
                "Next": self.schedule.next_after(now).isoformat() if self.schedule else None,
                "LastUpdated": now.isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        self._last = now
        log.info("%s: timer fired (past_due=%s)", self.function_name, past_due)
        try:
            self._run(request)
        except Exception:
            log.exception("%s: timer function failed", self.function_name)
