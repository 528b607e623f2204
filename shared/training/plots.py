"""The plots a training unit saves beside its model (drawn by ``shared.ml.plots``): PNGs
for a whole model, the numbers to draw them from for each partition of a partitioned one.

A plot is a nice-to-have: a failure to draw one is logged and never fails the training.
"""

from __future__ import annotations

import json
from typing import Any

from shared.observability import get_logger

log = get_logger("training")


def plot_path(name: str) -> str:
    """Where a plot lives, relative to a version's (or a partition's) folder."""
    return f"plots/{name}.png"


PLOT_DATA = "plots.json"  # a partition's plots, as the numbers they are drawn from


def partition_plot_data(trained: Any, frame: Any) -> dict[str, Any]:
    """``{name: numbers}`` for a partition's plots, drawn when someone views them (a
    1,000-room job no longer draws 2,000 PNGs nobody may open); empty on failure."""
    try:
        from shared.ml.plots import plot_data  # lazy: the ML stack

        data = plot_data(trained, frame)
        json.dumps(data, allow_nan=False)  # staged as strict JSON: refuse it here, not there
        return data
    except Exception:  # plots must never cost a model its training
        log.warning("training plot data failed", exc_info=True)
        return {}


def training_plots(trained: Any, frame: Any) -> dict[str, bytes]:
    """``{name: PNG}`` for a trained unit; empty when drawing failed (logged)."""
    try:
        from shared.ml.plots import render_training_plots  # lazy: matplotlib

        return render_training_plots(trained, frame)
    except Exception:  # plots must never cost a model its training
        log.warning("training plots failed", exc_info=True)
        return {}
