"""An LRU whose values are built at most once per key, however many threads ask at once.

The model loader keeps its loaded models in one (bounded by their serialized bytes) and
what is derived from them (a servable with its schema, a batch session) in another, so
every "load once, keep the recent ones" in the platform is this one class.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LoadOnce(Generic[K, V]):
    """``get_or_build(key, build)``: one ``build`` per key at a time, others wait for it.

    Least recently used entries are evicted while the total ``weigh(value)`` exceeds
    ``max_weight`` or the entry count exceeds ``max_entries``; the newest entry always
    stays, however heavy. ``on_evict(key, value)`` runs for every evicted entry.
    """

    def __init__(
        self,
        *,
        max_weight: float = float("inf"),
        max_entries: int | None = None,
        weigh: Callable[[V], float] = lambda _: 1,
        on_evict: Callable[[K, V], None] | None = None,
        observe: Callable[[bool, int], None] | None = None,
    ) -> None:
        self.max_weight = max_weight
        self.max_entries = max_entries
        self._weigh = weigh
        self._on_evict = on_evict
        self._observe = observe  # (hit, entries) per get_or_build, e.g. a metrics counter
        self._values: OrderedDict[K, V] = OrderedDict()
        self._weight = 0.0
        self._lock = threading.Lock()
        self._building: dict[K, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: K) -> bool:
        return key in self._values

    @property
    def weight(self) -> float:
        return self._weight

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._values.get(key)
            if value is not None:
                self._values.move_to_end(key)
            return value

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None:
                self._values.move_to_end(key)
        if hit is not None:
            self._seen(True)
            return hit
        with self._lock:
            gate = self._building.setdefault(key, threading.Lock())
        with gate:  # one build per key, however many callers arrive at once
            with self._lock:
                hit = self._values.get(key)
            if hit is not None:
                self._seen(True)
                return hit
            value = build()
            self.put(key, value)
            with self._lock:
                self._building.pop(key, None)
            self._seen(False)
            return value

    def _seen(self, hit: bool) -> None:
        if self._observe is not None:
            self._observe(hit, len(self._values))

    def values(self) -> list[V]:
        """The cached values, least recently used first."""
        with self._lock:
            return list(self._values.values())

    def put(self, key: K, value: V) -> None:
        evicted: list[tuple[K, V]] = []
        with self._lock:
            old = self._values.pop(key, None)
            if old is not None:
                self._weight -= self._weigh(old)
            self._values[key] = value
            self._weight += self._weigh(value)
            while len(self._values) > 1 and (
                self._weight > self.max_weight
                or (self.max_entries is not None and len(self._values) > self.max_entries)
            ):
                gone_key, gone = self._values.popitem(last=False)
                self._weight -= self._weigh(gone)
                evicted.append((gone_key, gone))
        if self._on_evict is not None:
            for gone_key, gone in evicted:
                self._on_evict(gone_key, gone)

    def discard(self, predicate: Callable[[K], bool]) -> None:
        """Drop every entry whose key matches (no ``on_evict``: the caller asked for it)."""
        with self._lock:
            for key in [k for k in self._values if predicate(k)]:
                self._weight -= self._weigh(self._values.pop(key))

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._weight = 0.0
