"""The bytes ``numpy.save`` writes for a plain array, without its per-call overhead.

skops stores every array of a model as its own ``.npy`` member: a 100-tree forest has
about 600 (each tree's nodes, values, features, path lengths). For each, ``numpy.save``
rebuilds the header from the dtype's description (walking a structured dtype field by
field), formats it through a dict and ``repr``, picks a format version, then streams the
data in chunks: about a quarter of a forest's skops dump.

:func:`npy_bytes` writes the same bytes: the version 1.0 header numpy writes
(``numpy/lib/_format_impl.py``: ``_write_array_header``, ``_wrap_header``), with each
dtype's description computed once, then the data in the array's own order (C, or Fortran
for an array only Fortran-contiguous). It answers ``None`` where numpy would do anything
else (object or user dtypes, a dtype with metadata, a header over version 1.0's limit or
outside latin-1): those still go through ``numpy.save``. :func:`same_as_numpy` checks it
against ``numpy.save`` on this numpy before it is used.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from numpy.lib.format import dtype_to_descr

_MAGIC_1_0 = b"\x93NUMPY\x01\x00"
_ALIGN = 64  # numpy's ARRAY_ALIGN
_PREFIX_LEN = len(_MAGIC_1_0) + 2  # the magic string and the '<H' header length
_GROWTH_DIGITS = 21  # numpy's GROWTH_AXIS_MAX_DIGITS: room to grow the first axis in place
_descriptions: dict[np.dtype, str] = {}


def npy_bytes(array: np.ndarray) -> bytes | None:
    """``numpy.save(buffer, array, allow_pickle=False)``'s bytes, or ``None`` (see above)."""
    dtype = array.dtype
    if type(array) is not np.ndarray or dtype.hasobject or dtype.metadata is not None:
        return None
    if not type(dtype)._legacy:  # user dtypes: numpy writes them another way
        return None
    description = _descriptions.get(dtype)
    if description is None:
        description = _descriptions[dtype] = repr(dtype_to_descr(dtype))
    fortran = not array.flags.c_contiguous and array.flags.f_contiguous
    shape = array.shape
    header = f"{{'descr': {description}, 'fortran_order': {fortran!r}, 'shape': {shape!r}, }}"
    if shape:
        header += " " * (_GROWTH_DIGITS - len(repr(shape[-1 if fortran else 0])))
    try:
        encoded = header.encode("latin1")
    except UnicodeEncodeError:
        return None
    length = len(encoded) + 1
    padding = _ALIGN - ((_PREFIX_LEN + length) % _ALIGN)
    if length + padding > 0xFFFF:  # numpy moves to format 2.0 here
        return None
    prefix = _MAGIC_1_0 + struct.pack("<H", length + padding)
    return b"".join(
        (prefix, encoded, b" " * padding, b"\n", array.tobytes("F" if fortran else "C"))
    )


def numpy_save_bytes(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def same_as_numpy() -> bool:
    """Whether :func:`npy_bytes` writes what ``numpy.save`` writes, on this numpy, for the
    kinds of arrays a fitted model holds."""
    node = np.dtype([("left", "<i8"), ("threshold", "<f8"), ("missing", "u1")], align=True)
    samples = [
        np.arange(7, dtype=np.int64),
        np.zeros((3, 2, 1), dtype=np.float64),
        np.asfortranarray(np.ones((4, 3), dtype=np.float32)),
        np.arange(12.0)[::2],
        np.zeros(5, dtype=node),
        np.array(3.5),
        np.zeros((0, 4)),
        np.array([True, False]),
        np.array(["a", "bc"]),
    ]
    return all(npy_bytes(a) == numpy_save_bytes(a) for a in samples)
