"""The sampled prediction log and feedback on it (Table ``Predictions``).

A sampled share of requests (PREDICTION_LOG_SAMPLE_RATE, default 10%, chosen by a hash
of the request id) is written by a background thread, so logging never slows the
response; when the queue is full an entry is dropped and counted, never waited for.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import queue
import threading
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
log = get_logger("prediction-log")


class FeedbackBody(BaseModel):
    actual: Any = Field(description="The true value: one per record (a list) or a single one.")
    comment: str | None = Field(default=None, max_length=1000)


class FeedbackAccepted(BaseModel):
    request_id: str
    model: str
    version: int
    received_at: datetime


class LoggedPrediction(BaseModel):
    request_id: str
    model: str
    version: int
    variant: str | None
    partition: str | None
    at: datetime
    latency_ms: float
    records: list[dict[str, Any]] | None
    predictions: list[Any] | None
    actual: Any = None


def sampled(request_id: str, rate: float) -> bool:
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    bucket = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big")
    return bucket / 2**32 < rate


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
        request_id: str,
        model: str,
        version: int,
        variant: str | None,
        partition: str | None,
        latency_ms: float,
        records: list[dict[str, Any]],
        predictions: list[Any],
    ) -> bool:
        """Queue the entry if the request is in the sample; True when it will be logged."""
        if not sampled(request_id, self.sample_rate):
            return False
        inputs, inputs_cut = _json(records)
        outputs, outputs_cut = _json(predictions)
        entry = {
            "PartitionKey": request_id,
            "RowKey": ROW,
            "model": model,
            "version": version,
            "variant": variant or "",
            "partition": partition or "",
            "at": iso(utcnow()),
            "latency_ms": round(latency_ms, 3),
            "n_records": len(records),
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

    def feedback(self, request_id: str, body: FeedbackBody) -> FeedbackAccepted:
        try:
            e = self.table.get_entity(request_id[:128], ROW)
        except ResourceNotFoundError:
            raise NotFound(
                "No logged prediction has this request id (only a sample is logged; the"
                " X-Prediction-Logged header says which).",
                code="PREDICTION_NOT_LOGGED",
            ) from None
        now = utcnow()
        actual, _ = _json(body.actual)
        self.table.update_entity(
            {
                "PartitionKey": request_id,
                "RowKey": ROW,
                "actual": actual,
                "comment": body.comment or "",
                "feedback_at": iso(now),
            },
            mode=UpdateMode.MERGE,
        )
        return FeedbackAccepted(
            request_id=request_id, model=e["model"], version=int(e["version"]), received_at=now
        )

    def recent(self, model: str, since: datetime, limit: int = 5000) -> list[LoggedPrediction]:
        found = self.table.query_entities(
            "model eq @m and at ge @since", parameters={"m": model, "since": iso(since)}
        )
        out = []
        for e in found:
            out.append(
                LoggedPrediction(
                    request_id=e["PartitionKey"],
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
