"""skops (de)serialisation of fitted pipelines, loading only an explicit allow-list.

skops trusts the common scikit-learn and numpy types itself; the few it does not are the
hand-reviewed ``SKOPS_EXTRA_TRUSTED`` (``shared.registry.formats``). Anything else in a file
is refused before any object is built: the list is never derived from the file itself.
"""

from __future__ import annotations

from typing import Any

import skops.io as sio

from shared.registry.formats import SKOPS_EXTRA_TRUSTED


class UntrustedModelError(ValueError):
    """The skops file holds types outside the allow-list."""

    def __init__(self, types: list[str]) -> None:
        self.types = types
        super().__init__(f"The skops file contains types that are not allowed: {', '.join(types)}.")


def dump_skops(pipeline: Any) -> bytes:
    return sio.dumps(pipeline)


def load_skops(data: bytes) -> Any:
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in SKOPS_EXTRA_TRUSTED]
    if untrusted:
        raise UntrustedModelError(untrusted)
    return sio.loads(data, trusted=list(SKOPS_EXTRA_TRUSTED))
