"""One online prediction with its surroundings: the traffic split, shadow scoring,
per-variant counters and the sampled log. The answer never waits for the extras."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.observability import get_logger
from shared.prediction.answer import OnlineResult
from shared.prediction.body import OnlineRequest
from shared.prediction.engine import Predictor
from shared.prediction.log import MAX_FIELD_CHARS, PredictionLog, new_prediction_id
from shared.prediction.schemas import AbResults, FeedbackMetrics
from shared.prediction.traffic import TrafficRouter

log = get_logger("predict")


class PredictionService:
    def __init__(self, predictor: Predictor, router: TrafficRouter, log_: PredictionLog) -> None:
        self.predictor = predictor
        self.router = router
        self.log = log_
        self._shadow_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")

    def close(self) -> None:
        """Let running shadow scorings finish and stop the pool's threads."""
        self._shadow_pool.shutdown(wait=True, cancel_futures=True)

    def predict(
        self,
        name: str,
        request: OnlineRequest,
        *,
        routing_key: str | None = None,
        request_id: str = "",
        owner_id: str = "",
    ) -> tuple[OnlineResult, bool]:
        """The prediction (with its server-made ``prediction_id``), and whether it was
        logged (so feedback can refer to it by that id)."""
        traffic = (
            self.router.get(name) if request.version is None and request.alias is None else None
        )
        if traffic is not None and traffic.weights:
            request = request.but(alias=self.router.choose(name, traffic, routing_key))
        alias = request.alias
        started = time.perf_counter()
        prediction_id = new_prediction_id()
        result = self.predictor.predict(name, request, request_id, prediction_id)
        latency_ms = (time.perf_counter() - started) * 1000
        variant = alias or ("version" if request.version is not None else "default")
        rows = request.rows
        self.router.count(name, variant, result.version, "primary", rows.n_rows, latency_ms)
        if traffic is not None and traffic.shadow and traffic.shadow != alias:
            self._shadow_pool.submit(
                self._shadow, name, traffic.shadow, request, result.predictions
            )
        logged = self.log.offer(
            prediction_id,
            request_id,
            owner_id,
            name,
            result.version,
            alias,
            result.partition,
            latency_ms,
            # Each value takes more than 4 characters of JSON in a record: a body with more
            # values than that would be cut anyway, so it is not even serialised.
            rows.as_records() if rows.n_values * 4 <= MAX_FIELD_CHARS else None,
            result.predictions,
            n_records=rows.n_rows,
        )
        return result, logged

    def _shadow(self, name: str, shadow: str, request: OnlineRequest, primary: list[Any]) -> None:
        started = time.perf_counter()
        n_rows = request.rows.n_rows
        shadowed = request.but(alias=shadow, version=None, return_probabilities=False)
        try:
            result = self.predictor.predict(name, shadowed)
        except Exception:  # noqa: BLE001 - a broken challenger must not touch the champion
            log.warning("shadow scoring failed", extra={"model": name, "shadow": shadow})
            self.router.count(name, shadow, 0, "shadow", n_rows, 0.0, error=True)
            return
        self.router.count(
            name,
            shadow,
            result.version,
            "shadow",
            n_rows,
            (time.perf_counter() - started) * 1000,
        )
        agreed = sum(str(a) == str(b) for a, b in zip(result.predictions, primary, strict=False))
        self.router.agree(name, shadow, len(primary), agreed)

    def ab_results(self, name: str, task: str | None) -> AbResults:
        variants, shadows = self.router.results(name)
        self.log.drain(2.0)
        feedback = [
            FeedbackMetrics(**m)
            for m in sorted(
                self.log.feedback_metrics(name, task).values(), key=lambda m: m["version"]
            )
        ]
        return AbResults(
            model=name,
            traffic=self.router.get(name),
            variants=variants,
            shadow=shadows,
            feedback=feedback,
        )
