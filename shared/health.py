"""Dependency checks for GET /health: storage (blob, table, queue) and Key Vault."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import HttpResponseError
from pydantic import BaseModel

from shared.resources import Containers, Queues
from shared.secrets import SecretStore
from shared.settings import Settings
from shared.storage import Storage


class Heartbeat(BaseModel):
    version: str


class DependencyStatus(BaseModel):
    status: str  # "ok", "unavailable" or "skipped"
    ms: float | None = None
    error: str | None = None


class HealthReport(BaseModel):
    status: str  # "ok" or "unavailable"
    version: str
    failing: list[str]
    checks: dict[str, DependencyStatus]


_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")


def _probe(call: Callable[[], Any]) -> DependencyStatus:
    started = time.perf_counter()
    try:
        call()
    except HttpResponseError as exc:
        # Any answer below 500 (a 404 for a table not made yet) proves the service is up.
        if exc.status_code is None or exc.status_code >= 500 or exc.status_code in (401, 403):
            return DependencyStatus(status="unavailable", error=f"HTTP {exc.status_code}")
    except Exception as exc:  # noqa: BLE001 - any failure means unavailable
        return DependencyStatus(status="unavailable", error=type(exc).__name__)
    return DependencyStatus(status="ok", ms=round((time.perf_counter() - started) * 1000, 1))


def check_health(settings: Settings, storage: Storage, secrets: SecretStore) -> HealthReport:
    t = settings.health_timeout_seconds
    fast: dict[str, Any] = {"retry_total": 0, "connection_timeout": t, "read_timeout": t}
    checks: dict[str, Callable[[], Any]] = {
        "blob": lambda: storage.blob_service.get_container_client(Containers.MODELS).exists(**fast),
        "table": lambda: next(
            iter(storage.table_service.list_tables(results_per_page=1, **fast)), None
        ),
        "queue": lambda: storage.queue_service.get_queue_client(
            Queues.TRAINING
        ).get_queue_properties(**fast),
    }
    if secrets.source == "key_vault":
        checks["key_vault"] = lambda: secrets.check(settings.jwt_signing_key_secret, t)
    futures = {name: _pool.submit(_probe, fn) for name, fn in checks.items()}
    results: dict[str, DependencyStatus] = {}
    for name, future in futures.items():
        try:
            results[name] = future.result(timeout=t + 1)
        except TimeoutError:
            results[name] = DependencyStatus(status="unavailable", error="timeout")
    if "key_vault" not in results:
        results["key_vault"] = DependencyStatus(status="skipped")
    failing = [name for name, r in results.items() if r.status == "unavailable"]
    return HealthReport(
        status="unavailable" if failing else "ok",
        version=settings.git_metadata,
        failing=failing,
        checks=results,
    )
