"""A/B splits and shadow scoring between aliases, and the per-variant results.

A split is ``{"champion": 90, "challenger": 10}`` (weights), optionally with
``"shadow": "challenger"`` (also scored, never returned). With ``X-Routing-Key`` the
choice is a deterministic hash of the key, so a user keeps their variant.
Counters are kept per instance in memory and written to Table ``AbStats`` (one row per
instance and variant, so instances never contend); results add the rows up.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import threading
import time
import uuid
from collections import defaultdict

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.names import check_name
from shared.observability import get_logger
from shared.prediction.schemas import (
    ShadowAgreement,
    Traffic,
    TrafficBody,
    VariantResult,
)

INSTANCE = os.environ.get("WEBSITE_INSTANCE_ID", "")[:16] or uuid.uuid4().hex[:12]
log = get_logger("traffic")


class TrafficRouter:
    def __init__(self, traffic: TableClient, stats: TableClient, ttl_seconds: float) -> None:
        self.table = traffic
        self.stats_table = stats
        self.ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Traffic | None]] = {}
        self._lock = threading.Lock()
        # (model, variant, version, role) -> [requests, records, errors, latency sum, max]
        self._counts: dict[tuple[str, str, int, str], list[float]] = defaultdict(
            lambda: [0, 0, 0, 0.0, 0.0]
        )
        self._agreement: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._dirty: set[str] = set()
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()

    # --- configuration -----------------------------------------------------------------------
    def put(self, model: str, body: TrafficBody, by: str) -> Traffic:
        check_name(model, "model")
        self.table.upsert_entity(
            {
                "PartitionKey": "traffic",
                "RowKey": model,
                "weights": json.dumps(body.weights),
                "shadow": body.shadow or "",
                "updated_by": by,
            },
            mode=UpdateMode.REPLACE,
        )
        traffic = Traffic(model=model, weights=body.weights, shadow=body.shadow, updated_by=by)
        with self._lock:
            self._cache[model] = (time.monotonic(), traffic)
        return traffic

    def delete(self, model: str) -> None:
        check_name(model, "model")
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity("traffic", model)
        with self._lock:
            self._cache[model] = (time.monotonic(), None)

    def get(self, model: str) -> Traffic | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(model)
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        try:
            e = self.table.get_entity("traffic", model)
            traffic: Traffic | None = Traffic(
                model=model,
                weights=json.loads(e["weights"]),
                shadow=e.get("shadow") or None,
                updated_by=e.get("updated_by"),
            )
        except ResourceNotFoundError:
            traffic = None
        with self._lock:
            self._cache[model] = (now, traffic)
        return traffic

    @staticmethod
    def choose(model: str, traffic: Traffic, routing_key: str | None) -> str | None:
        weights = sorted((a, w) for a, w in traffic.weights.items() if w > 0)
        total = sum(w for _, w in weights)
        if not total:
            return None
        if routing_key:
            digest = hashlib.sha256(f"{model}\0{routing_key}".encode()).digest()
            point = int.from_bytes(digest[:8], "big") % total
        else:
            point = random.randrange(total)  # noqa: S311 - a traffic split, not a secret
        for alias, weight in weights:
            if point < weight:
                return alias
            point -= weight
        return weights[-1][0]

    # --- counters ------------------------------------------------------------------------------
    def count(
        self,
        model: str,
        variant: str,
        version: int,
        role: str,
        records: int,
        latency_ms: float,
        error: bool = False,
    ) -> None:
        with self._lock:
            c = self._counts[(model, variant, version, role)]
            c[0] += 1
            c[1] += records
            c[2] += int(error)
            c[3] += latency_ms
            c[4] = max(c[4], latency_ms)
            self._dirty.add(model)
        self._ensure_flusher()

    def agree(self, model: str, shadow: str, compared: int, agreed: int) -> None:
        with self._lock:
            a = self._agreement[(model, shadow)]
            a[0] += compared
            a[1] += agreed
            self._dirty.add(model)
        self._ensure_flusher()

    def _ensure_flusher(self) -> None:
        if self._closed.is_set():
            return
        if self._flusher is None or not self._flusher.is_alive():
            with self._lock:
                if self._flusher is None or not self._flusher.is_alive():
                    self._flusher = threading.Thread(
                        target=self._flush_forever, name="ab-stats", daemon=True
                    )
                    self._flusher.start()

    def _flush_forever(self) -> None:
        while not self._closed.wait(5):
            try:
                self.flush()
            except Exception:
                log.warning("could not write A/B counters", exc_info=True)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the flusher thread and write what is still counted (shutdown, tests)."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join(timeout)
        try:
            self.flush()
        except Exception:
            log.warning("could not write A/B counters on close", exc_info=True)

    def flush(self, model: str | None = None) -> None:
        """Write this instance's counters (absolute values: a retry never double counts)."""
        with self._lock:
            models = {model} if model else set(self._dirty)
            self._dirty -= models
            rows = [
                {
                    "PartitionKey": m,
                    "RowKey": f"{INSTANCE}|{v}|{ver}|{role}",
                    "kind": "variant",
                    "variant": v,
                    "version": ver,
                    "role": role,
                    "requests": int(c[0]),
                    "records": int(c[1]),
                    "errors": int(c[2]),
                    "latency_sum": c[3],
                    "latency_max": c[4],
                }
                for (m, v, ver, role), c in self._counts.items()
                if m in models
            ] + [
                {
                    "PartitionKey": m,
                    "RowKey": f"{INSTANCE}|shadow|{s}",
                    "kind": "shadow",
                    "variant": s,
                    "compared": a[0],
                    "agreed": a[1],
                }
                for (m, s), a in self._agreement.items()
                if m in models
            ]
        for row in rows:
            self.stats_table.upsert_entity(row, mode=UpdateMode.REPLACE)

    def results(self, model: str) -> tuple[list[VariantResult], list[ShadowAgreement]]:
        self.flush(model)
        variants: dict[tuple[str, int, str], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0.0])
        shadows: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for e in self.stats_table.query_entities("PartitionKey eq @m", parameters={"m": model}):
            if e.get("kind") == "shadow":
                shadows[e["variant"]][0] += int(e["compared"])
                shadows[e["variant"]][1] += int(e["agreed"])
                continue
            v = variants[(e["variant"], int(e["version"]), e["role"])]
            v[0] += int(e["requests"])
            v[1] += int(e["records"])
            v[2] += int(e["errors"])
            v[3] += float(e["latency_sum"])
            v[4] = max(v[4], float(e["latency_max"]))
        return (
            [
                VariantResult(
                    variant=variant,
                    version=version,
                    role=role,
                    requests=int(c[0]),
                    records=int(c[1]),
                    errors=int(c[2]),
                    mean_latency_ms=round(c[3] / c[0], 3) if c[0] else None,
                    max_latency_ms=round(c[4], 3) if c[0] else None,
                )
                for (variant, version, role), c in sorted(variants.items())
            ],
            [
                ShadowAgreement(
                    shadow=s,
                    compared_records=a[0],
                    agreement=round(a[1] / a[0], 4) if a[0] else None,
                )
                for s, a in sorted(shadows.items())
            ],
        )
