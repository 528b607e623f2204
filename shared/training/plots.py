"""The plots a training unit saves beside its model (drawn by ``shared.ml.plots``).

A plot is a nice-to-have: a failure to draw one is logged and never fails the training.
"""

from __future__ import annotations

from typing import Any

from shared.observability import get_logger

log = get_logger("training")


def plot_path(name: str) -> str:
    """Where a plot lives, relative to a version's (or a partition's) folder."""
    return f"plots/{name}.png"


def training_plots(trained: Any, frame: Any) -> dict[str, bytes]:
    """``{name: PNG}`` for a trained unit; empty when drawing failed (logged)."""
    try:
        from shared.ml.plots import render_training_plots  # lazy: matplotlib

        return render_training_plots(trained, frame)
    except Exception:  # plots must never cost a model its training
        log.warning("training plots failed", exc_info=True)
        return {}
