"""Model monitoring: drift of new data against a version's training profile (``drift``)
and evaluation of a version on labelled data (``evaluate``).

``functions/monitoring.py`` imports these modules when ``function_app`` loads, so they
import numpy, scipy, pandas and scikit-learn inside their functions only: login and
heartbeat must not pay for the ML stack on a cold start.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from shared.errors import NotFound

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shared.registry.schemas import VersionInfo
    from shared.registry.store import ModelRegistry


def version_info(registry: ModelRegistry, name: str, version: int | None) -> VersionInfo:
    """The version (default: champion, else latest); 404 naming the model when it is absent."""
    try:
        return registry.get_version(name, registry.resolve(name, version=version))
    except NotFound as exc:
        if exc.code == "VERSION_NOT_FOUND":
            registry.resolve(name)  # an unknown model is MODEL_NOT_FOUND, not a missing version
        raise


def _candidates(value: Any) -> list[str]:
    """The spellings a partition value may have in a manifest.

    Training keys partitions by ``str(value)`` of the column as it read it; the same
    dataset read again may type the column differently (integers with gaps arrive as
    floats), so 3, 3.0 and "3" all name partition "3" (or "3.0") when only one exists.
    """
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    out = [str(value)]
    if isinstance(value, float) and value.is_integer():
        out.append(str(int(value)))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(str(float(value)))
    return out


def partition_labels(values: pd.Series, known: Collection[str]) -> np.ndarray:
    """Per row, the manifest key of its partition, or None (missing or unknown value)."""
    import numpy as np
    import pandas as pd

    mapping: dict[Any, str | None] = {}
    for value in pd.unique(values.dropna()):
        mapping[value] = next((c for c in _candidates(value) if c in known), None)
    labels = values.map(mapping).astype(object)
    return np.asarray(labels.where(labels.notna(), None), dtype=object)
