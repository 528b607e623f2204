"""The sampled prediction log and feedback on it (Table ``Predictions``).

A sampled share of requests (PREDICTION_LOG_SAMPLE_RATE, default 10%, chosen by the
server at random, so a caller cannot pick its way into or out of the sample) is written
by a background thread, so logging never slows the response; when the queue is full an
entry is dropped and counted, never waited for.

Entries are keyed by a server-made prediction id returned to the caller (never by the
caller's X-Request-ID, which anyone can replay), and remember their owner: feedback is
accepted from the principal who made the prediction (or an admin) only.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import re
import secrets
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode
from pydantic import BaseModel, Field

from shared.errors import NotFound
from shared.observability import get_logger
from shared.tables import iso, parse_iso, utcnow

ROW = "p"
WRITERS = 4
MAX_FIELD_CHARS = 30_000  # Table properties hold 64 KiB; JSON text is UTF-16 there
PREDICTION_ID = re.compile(r"^[0-9a-f]{32}$")
log = get_logger("prediction-log")


class FeedbackBody(BaseModel):
    actual: Any = Field(description="The true value: one per record (a list) or a single one.")
    comment: str | None = Field(default=None, max_length=1000)


class FeedbackAccepted(BaseModel):
    prediction_id: str
    request_id: str | None = None
    model: str
    version: int
    received_at: datetime


class LoggedPrediction(BaseModel):
    prediction_id: str
    request_id: str | None = None
    model: str
    version: int
    variant: str | None
    partition: str | None
    at: datetime
    latency_ms: float
    records: list[dict[str, Any]] | None
    predictions: list[Any] | None
    actual: Any = None


def new_prediction_id() -> str:
    return uuid.uuid4().hex


def sampled(rate: float) -> bool:
    """The server's own coin: nothing the caller sends decides whether it is logged."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    return secrets.randbelow(2**32) / 2**32 < rate


def _not_logged() -> NotFound:
    return NotFound(
        "No logged prediction of yours has this id (only a sample is logged; the"
        " X-Prediction-Logged header says which, X-Prediction-ID names it).",
        code="PREDICTION_NOT_LOGGED",
    )


def _json(value: Any) -> tuple[str, bool]:
    text = json.dumps(value, default=str, allow_nan=True)
    return (text, False) if len(text) <= MAX_FIELD_CHARS else ("", True)


class PredictionLog:
    def __init__(self, table: TableClient, sample_rate: float, capacity: int = 10_000) -> None:
        self.table = table
        self.sample_rate = sample_rate
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=capacity)
        self._writers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        self.dropped = 0

    def offer(
        self,
        prediction_id: str,
        request_id: str,
        owner_id: str,
        model: str,
        version: int,
        variant: str | None,
        partition: str | None,
        latency_ms: float,
        records: list[dict[str, Any]] | None,
        predictions: list[Any],
        n_records: int | None = None,
    ) -> bool:
        """Queue the entry if the request is in the sample; True when it will be logged.

        ``records`` None: too large to log (the entry says its inputs were cut)."""
        if not sampled(self.sample_rate):
            return False
        inputs, inputs_cut = ("", True) if records is None else _json(records)
        outputs, outputs_cut = _json(predictions)
        entry = {
            "PartitionKey": prediction_id,
            "RowKey": ROW,
            "request_id": request_id,
            "owner_id": owner_id,
            "model": model,
            "version": version,
            "variant": variant or "",
            "partition": partition or "",
            "at": iso(utcnow()),
            "latency_ms": round(latency_ms, 3),
            "n_records": len(records) if n_records is None else n_records,
            "inputs": inputs,
            "inputs_truncated": inputs_cut,
            "outputs": outputs,
            "outputs_truncated": outputs_cut,
        }
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1
            return False
        self._ensure_writer()
        return True

    def _ensure_writer(self) -> None:
        # A few writers: one Table round trip per entry caps a single thread at a few
        # hundred entries a second.
        with self._lock:
            if self._closed:
                return
            self._writers = [w for w in self._writers if w.is_alive()]
            while len(self._writers) < WRITERS:
                writer = threading.Thread(
                    target=self._write_forever, name="prediction-log", daemon=True
                )
                writer.start()
                self._writers.append(writer)

    def _write_forever(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:  # close(): this writer stops
                self._queue.task_done()
                return
            try:
                self.table.upsert_entity(entry, mode=UpdateMode.REPLACE)
            except Exception:
                log.warning("could not write a prediction log entry", exc_info=True)
            finally:
                self._queue.task_done()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until queued entries are written (tests, shutdown)."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        while self._queue.unfinished_tasks and not deadline.is_set():
            deadline.wait(0.02)
        timer.cancel()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (bounded by ``timeout``), then stop the writer threads."""
        self.drain(timeout)
        with self._lock:
            self._closed = True
            writers, self._writers = self._writers, []
        for _ in writers:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(None)
        for writer in writers:
            writer.join(timeout)

    def feedback(
        self, prediction_id: str, owner_id: str, body: FeedbackBody, *, is_admin: bool = False
    ) -> FeedbackAccepted:
        """Ground truth from the principal who predicted (an admin too); 404 otherwise,
        so nobody learns which ids exist."""
        if not PREDICTION_ID.match(prediction_id):
            raise _not_logged()
        try:
            e = self.table.get_entity(prediction_id, ROW)
        except ResourceNotFoundError:
            raise _not_logged() from None
        if e.get("owner_id") != owner_id and not is_admin:
            raise _not_logged()
        now = utcnow()
        actual, _ = _json(body.actual)
        self.table.update_entity(
            {
                "PartitionKey": prediction_id,
                "RowKey": ROW,
                "actual": actual,
                "comment": body.comment or "",
                "feedback_at": iso(now),
            },
            mode=UpdateMode.MERGE,
        )
        return FeedbackAccepted(
            prediction_id=prediction_id,
            request_id=e.get("request_id") or None,
            model=e["model"],
            version=int(e["version"]),
            received_at=now,
        )

    def recent(self, model: str, since: datetime, limit: int = 5000) -> list[LoggedPrediction]:
        found = self.table.query_entities(
            "model eq @m and at ge @since", parameters={"m": model, "since": iso(since)}
        )
        out = []
        for e in found:
            out.append(
                LoggedPrediction(
                    prediction_id=e["PartitionKey"],
                    request_id=e.get("request_id") or None,
                    model=e["model"],
                    version=int(e["version"]),
                    variant=e.get("variant") or None,
                    partition=e.get("partition") or None,
                    at=parse_iso(e["at"]),
                    latency_ms=float(e["latency_ms"]),
                    records=json.loads(e["inputs"]) if e.get("inputs") else None,
                    predictions=json.loads(e["outputs"]) if e.get("outputs") else None,
                    actual=json.loads(e["actual"]) if e.get("actual") else None,
                )
            )
            if len(out) >= limit:
                break
        return out

    def feedback_metrics(self, model: str, task: str | None, days: int = 30) -> dict[int, dict]:
        """Per version: how predictions compare with the ground truth received."""
        pairs: dict[int, list[tuple[Any, Any]]] = {}
        for p in self.recent(model, utcnow() - timedelta(days=days), limit=100_000):
            if p.actual is None or p.predictions is None:
                continue
            actual = p.actual if isinstance(p.actual, list) else [p.actual]
            for predicted, truth in zip(p.predictions, actual, strict=False):
                pairs.setdefault(p.version, []).append((predicted, truth))
        metrics: dict[int, dict] = {}
        for version, items in pairs.items():
            entry: dict[str, Any] = {"version": version, "feedback_count": len(items)}
            numeric = all(
                isinstance(a, int | float) and isinstance(b, int | float) for a, b in items
            )
            if task == "regression" and numeric:
                errors = [float(a) - float(b) for a, b in items]
                entry["mae"] = sum(abs(e) for e in errors) / len(errors)
                entry["rmse"] = math.sqrt(sum(e * e for e in errors) / len(errors))
            else:
                entry["accuracy"] = sum(str(a) == str(b) for a, b in items) / len(items)
            metrics[version] = entry
        return metrics
