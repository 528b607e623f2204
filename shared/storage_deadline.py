"""A time budget for every storage operation, so no request waits on storage unbounded.

Each SDK operation (one call, with its retries) gets ``seconds``: before every attempt
the remaining budget caps the attempt's connect and read timeouts, and once it is spent
the operation fails with :class:`StorageDeadlineExceeded` (a 503) instead of another
attempt. A frozen storage account (accepting connections, answering nothing) thus costs
a request at most one budget. HTTP functions run with ``STORAGE_HTTP_DEADLINE_SECONDS``;
queue and timer functions may take longer (``STORAGE_WORKER_DEADLINE_SECONDS``).

The budget lives in a context variable set per invocation; the hook that enforces it is
installed on the Blob, Queue and Table clients (``raw_request_hook``, run per attempt).
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.errors import ServiceUnavailable

_STARTED = "storage_deadline_started"
# Below this, an attempt could not even connect: fail now rather than start it.
_MIN_ATTEMPT_SECONDS = 0.05


class StorageDeadlineExceeded(ServiceUnavailable):
    """Storage did not answer within the invocation's budget (not an AzureError on
    purpose: the SDK retry policies must not retry past the budget)."""

    code = "STORAGE_TIMEOUT"

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Storage did not answer within {seconds:g} s; nothing was changed. Retry later.",
            dependency="storage",
        )


@dataclass
class Budget:
    seconds: float
    tripped: bool = False  # storage already ran out of time once in this invocation


T = TypeVar("T")
R = TypeVar("R")

_budget: ContextVar[Budget | None] = ContextVar("storage_budget", default=None)


@contextlib.contextmanager
def storage_deadline(seconds: float) -> Iterator[Budget]:
    """Run the block with a storage budget of ``seconds`` per operation."""
    budget = Budget(seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def storage_tripped() -> bool:
    """Whether storage already timed out in this invocation (skip optional writes)."""
    budget = _budget.get()
    return bool(budget and budget.tripped)


class DeadlineHook:
    """The per-attempt hook; ``default`` is the budget outside any :func:`storage_deadline`."""

    def __init__(self, default: float, connection_timeout: float, read_timeout: float) -> None:
        self.default = default
        self.connection_timeout = connection_timeout
        self.read_timeout = read_timeout

    def __call__(self, request: Any) -> None:
        budget = _budget.get()
        seconds = budget.seconds if budget else self.default
        context = request.context
        now = time.monotonic()
        started = context.get(_STARTED)
        if started is None:
            context[_STARTED] = started = now
        remaining = seconds - (now - started)
        if remaining < _MIN_ATTEMPT_SECONDS:
            if budget:
                budget.tripped = True
            raise StorageDeadlineExceeded(seconds)
        options = context.options
        options["connection_timeout"] = min(self.connection_timeout, remaining)
        options["read_timeout"] = min(self.read_timeout, remaining)


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int = 8) -> list[R]:
    """``[fn(x) for x in items]`` with storage calls overlapped, each under the caller's
    budget (a plain pool would drop the context variable and fall back to the default)."""
    items = list(items)
    if len(items) < 2:
        return [fn(x) for x in items]
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(lambda x: context.copy().run(fn, x), items))
