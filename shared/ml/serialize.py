"""skops (de)serialisation of fitted pipelines, loading only an explicit allow-list.

skops trusts the common scikit-learn and numpy types itself; the few it does not are the
hand-reviewed ``SKOPS_EXTRA_TRUSTED`` (``shared.registry.formats``). Anything else in a file
is refused before any object is built: the list is never derived from the file itself.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

import numpy as np
import orjson
import skops.io as sio
from skops.io._numpy import ndarray_get_state

from shared.ml.npy_bytes import npy_bytes, same_as_numpy
from shared.registry.formats import SKOPS_EXTRA_TRUSTED


class UntrustedModelError(ValueError):
    """The skops file holds types outside the allow-list."""

    def __init__(self, types: list[str]) -> None:
        self.types = types
        super().__init__(f"The skops file contains types that are not allowed: {', '.join(types)}.")


class _CompactJson:
    """skops writes its schema with ``json.dumps(state, indent=2)``: indentation switches
    the standard library to its pure-Python encoder, which was most of a 100-tree forest's
    save time (0.13 s of 0.14 s, measured). The same JSON without the whitespace, encoded
    by orjson: a 100-tree forest's schema is 0.7 MB, and orjson writes it in a fraction
    of the time the standard library's C encoder takes (a 100-tree forest saved in 50 ms
    instead of 62, medians of 30 interleaved saves).

    The schema holds only strings, ints, booleans, None, lists and dicts: skops stores
    every Python float as JSON text inside a string (``object_get_state``; a slice's bounds
    are its only bare numbers), so orjson's one difference that could matter, NaN written
    as null, has nothing to apply to. orjson also writes non-ASCII as UTF-8 rather than
    ``\\u`` escapes, which every JSON reader parses to the same text. What orjson refuses
    (non-string keys, integers over 64 bits) goes through the standard library as before."""

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj: Any, indent: Any = None, **kwargs: Any) -> str:
        if not kwargs:
            try:
                return orjson.dumps(obj).decode()
            except TypeError:
                pass
        return json.dumps(obj, separators=(",", ":"), **kwargs)


class _IndexedZipFile(zipfile.ZipFile):
    """skops asks ``name not in zip_file.namelist()`` before writing each array: a list
    rebuilt per array, so a 100-tree forest's 600 arrays cost 180,000 comparisons. The
    names as the dict's key view answer the same question at once; the archive written is
    the same."""

    def namelist(self) -> Any:  # a set-like view; skops only tests membership
        return self.NameToInfo.keys()


def _array_state(obj: Any, save_context: Any) -> dict[str, Any]:
    """skops' ``ndarray_get_state`` with the member's bytes from :func:`npy_bytes` (the
    same bytes; skops' own function for anything it does not write)."""
    data = npy_bytes(obj) if type(obj) is np.ndarray else None
    if data is None:
        return ndarray_get_state(obj, save_context)
    name = f"{save_context.memoize(obj)}.npy"
    if name not in save_context.zip_file.namelist():
        save_context.zip_file.writestr(name, data)
    return {
        "__class__": "ndarray",
        "__module__": "numpy",
        "__loader__": "NdArrayNode",
        "type": "numpy",
        "file": name,
    }


_fast_arrays: bool | None = None  # whether npy_bytes writes what numpy.save does here


def _fast_skops() -> None:
    global _fast_arrays
    from skops.io import _persist
    from skops.io._utils import _get_state

    if getattr(_persist, "json", None) is json:  # skops' own module reference, once
        _persist.json = _CompactJson
    if getattr(_persist, "ZipFile", None) is zipfile.ZipFile:
        _persist.ZipFile = _IndexedZipFile
    if _fast_arrays is None:
        try:
            _fast_arrays = same_as_numpy()
        except Exception:  # noqa: BLE001 - a numpy this does not fit: numpy.save as before
            _fast_arrays = False
        if _fast_arrays:
            _get_state.register(np.ndarray, _array_state)


def dump_skops(pipeline: Any) -> bytes:
    _fast_skops()
    return sio.dumps(pipeline)


def load_skops(data: bytes) -> Any:
    untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in SKOPS_EXTRA_TRUSTED]
    if untrusted:
        raise UntrustedModelError(untrusted)
    return sio.loads(data, trusted=list(SKOPS_EXTRA_TRUSTED))
