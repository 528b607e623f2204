"""One online prediction with its surroundings: the traffic split, shadow scoring,
per-variant counters and the sampled log. The answer never waits for the extras."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.errors import AppError
from shared.observability import get_logger
from shared.prediction.engine import Prediction, Predictor
from shared.prediction.log import PredictionLog, new_prediction_id
from shared.prediction.traffic import AbResults, FeedbackMetrics, TrafficRouter

log = get_logger("predict")


class PredictionService:
    def __init__(self, predictor: Predictor, router: TrafficRouter, log_: PredictionLog) -> None:
        self.predictor = predictor
        self.router = router
        self.log = log_
        self._shadow_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")

    def predict(
        self,
        name: str,
        records: Sequence[Any],
        version: int | None = None,
        alias: str | None = None,
        partition: str | None = None,
        return_probabilities: bool = False,
        routing_key: str | None = None,
        request_id: str = "",
        owner_id: str = "",
    ) -> tuple[Prediction, str, bool]:
        """The prediction, its server-made id, and whether it was logged (so feedback can
        refer to it by that id)."""
        traffic = self.router.get(name) if version is None and alias is None else None
        if traffic is not None and traffic.weights:
            alias = self.router.choose(name, traffic, routing_key)
        started = time.perf_counter()
        try:
            result = self.predictor.predict(
                name, records, version, alias, partition, return_probabilities
            )
        except AppError:
            raise
        variant = alias or ("version" if version is not None else "default")
        self.router.count(
            name,
            variant,
            result.version,
            "primary",
            len(records),
            (time.perf_counter() - started) * 1000,
        )
        if traffic is not None and traffic.shadow and traffic.shadow != alias:
            self._shadow_pool.submit(
                self._shadow, name, traffic.shadow, records, partition, result.predictions
            )
        prediction_id = new_prediction_id()
        logged = self.log.offer(
            prediction_id,
            request_id,
            owner_id,
            name,
            result.version,
            alias,
            result.partition,
            result.latency_ms,
            list(records),
            result.predictions,
        )
        return result, prediction_id, logged

    def _shadow(
        self,
        name: str,
        shadow: str,
        records: Sequence[Any],
        partition: str | None,
        primary: list[Any],
    ) -> None:
        started = time.perf_counter()
        try:
            result = self.predictor.predict(name, records, None, shadow, partition, False)
        except Exception:  # noqa: BLE001 - a broken challenger must not touch the champion
            log.warning("shadow scoring failed", extra={"model": name, "shadow": shadow})
            self.router.count(name, shadow, 0, "shadow", len(records), 0.0, error=True)
            return
        self.router.count(
            name,
            shadow,
            result.version,
            "shadow",
            len(records),
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
