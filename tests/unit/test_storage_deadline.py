"""The storage budget follows work handed to threads (a plain pool would lose it)."""

from __future__ import annotations

import threading

from shared import storage_deadline
from shared.storage_deadline import map_in_threads


def test_threads_run_under_the_callers_budget() -> None:
    def budget_seen(_: int) -> tuple[float | None, str]:
        budget = storage_deadline._budget.get()
        return (budget.seconds if budget else None), threading.current_thread().name

    with storage_deadline.storage_deadline(1.5):
        seen = map_in_threads(budget_seen, range(6), workers=3)
    assert [s for s, _ in seen] == [1.5] * 6
    assert any(name != threading.current_thread().name for _, name in seen)
    assert [s for s, _ in map_in_threads(budget_seen, range(3))] == [None] * 3


def test_a_trip_in_a_thread_is_seen_by_the_caller() -> None:
    def trip(_: int) -> None:
        storage_deadline._budget.get().tripped = True

    with storage_deadline.storage_deadline(1.0):
        map_in_threads(trip, range(2))
        assert storage_deadline.storage_tripped()
