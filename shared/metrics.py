"""Prometheus metrics of this instance (GET /metrics), kept in memory per process.

prometheus_client is imported on first use, not by ``import function_app``. Labels are
bounded: routes are templates (``predict/{model}``), never raw paths; models and versions
are the registry's. Each instance reports its own counts (scrape every instance, or read
the aggregated view in Application Insights when telemetry is on).
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] = {}

# Seconds; HTTP latency buckets cover 5 ms .. 60 s, training units 1 s .. 1 h.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
TRAINING_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)


def _build() -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    registry = CollectorRegistry(auto_describe=True)
    return {
        "registry": registry,
        "requests": Counter(
            "ml_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        ),
        "latency": Histogram(
            "ml_http_request_duration_seconds",
            "Time from the request reaching the handler wrapper to its response.",
            ["route", "method"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        ),
        "predictions": Counter(
            "ml_predictions",
            "Records predicted online, by model and version.",
            ["model", "version"],
            registry=registry,
        ),
        "training_units": Counter(
            "ml_training_units",
            "Training units finished on this instance, by outcome.",
            ["outcome"],
            registry=registry,
        ),
        "training_duration": Histogram(
            "ml_training_unit_duration_seconds",
            "Wall time of one training unit, by outcome.",
            ["outcome"],
            buckets=TRAINING_BUCKETS,
            registry=registry,
        ),
        "model_cache": Counter(
            "ml_model_cache_lookups",
            "Model cache lookups of this instance, by result (hit or miss).",
            ["result"],
            registry=registry,
        ),
        "cached_models": Gauge(
            "ml_model_cache_models", "Models held in this instance's cache.", registry=registry
        ),
    }


def _get() -> dict[str, Any]:
    if not _metrics:
        with _lock:
            if not _metrics:
                _metrics.update(_build())
    return _metrics


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    m = _get()
    m["requests"].labels(route, method, str(status)).inc()
    m["latency"].labels(route, method).observe(seconds)


def count_predictions(model: str, version: int, records: int) -> None:
    _get()["predictions"].labels(model, str(version)).inc(records)


def observe_training_unit(outcome: str, seconds: float) -> None:
    m = _get()
    m["training_units"].labels(outcome).inc()
    m["training_duration"].labels(outcome).observe(seconds)


def count_model_cache(hit: bool, cached_models: int) -> None:
    m = _get()
    m["model_cache"].labels("hit" if hit else "miss").inc()
    m["cached_models"].set(cached_models)


def exposition() -> tuple[bytes, str]:
    """The text exposition format and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(_get()["registry"]), CONTENT_TYPE_LATEST


def reset() -> None:
    """Forget every series (tests)."""
    with _lock:
        _metrics.clear()
