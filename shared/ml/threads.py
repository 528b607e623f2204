"""Limits on the native thread pools (OpenMP, BLAS) around a fit or a scoring pass.

``threadpoolctl.threadpool_limits`` looks for the loaded pools anew on every call: it
walks every shared library of the process, 4.4 ms measured, three times per room of a
partitioned job (the fit, the plot's scores, the plot's numbers), about 13 ms next to a
room's 160 ms fit. The pools are looked up once per process here, and again only when a
module was imported since: an import is how a new pool arrives (scikit-learn's OpenMP,
the BLAS of numpy or scipy).
"""

from __future__ import annotations

import sys
import threading
from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import ThreadpoolController

_lock = threading.Lock()
_found: tuple[int, ThreadpoolController] | None = None  # (len(sys.modules), controller)


def _controller() -> ThreadpoolController:
    global _found
    found, modules = _found, len(sys.modules)
    if found is None or found[0] != modules:
        with _lock:
            found = _found
            if found is None or found[0] != modules:
                found = _found = (modules, ThreadpoolController())
    return found[1]


def native_threads(limit: int) -> AbstractContextManager[Any]:
    """Hold every OpenMP and BLAS pool of the process to ``limit`` threads inside the
    ``with`` block, as ``threadpoolctl.threadpool_limits(limits=limit)`` does."""
    return _controller().limit(limits=max(1, int(limit)))
