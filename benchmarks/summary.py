"""Headline numbers of the benchmark scripts, gathered into one table by ``run_all.py``.

A script calls :func:`record` for each number worth a line (ours, the baseline it is
compared with, their ratio and the issue's target). Nothing happens unless ``run_all.py``
set ``BENCH_SUMMARY`` to the JSON-lines file it reads afterwards, so every script still
runs alone exactly as before.
"""

from __future__ import annotations

import json
import os

SUMMARY_ENV = "BENCH_SUMMARY"


def record(
    area: str,
    measure: str,
    ours: float | None,
    baseline: float | None,
    versus: str,
    unit: str = "s",
    target: str = "",
    lower_is_better: bool = True,
) -> None:
    """One line: ``ours`` vs ``baseline`` (``versus`` names it) in ``unit``."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    ratio = ours / baseline if ours is not None and baseline else None
    row = {
        "area": area,
        "measure": measure,
        "ours": ours,
        "baseline": baseline,
        "versus": versus,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "lower_is_better": lower_is_better,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
