"""Files in a training unit's pack are stored zstd-compressed when that pays.

Why: on the 2-core machine the benchmarks run on, the storage emulator's CPU per room
is what keeps two workers from being twice as fast as one: Azurite spends about 8-10 ms
of CPU per MB written, and a 1,000-row room's files are 2.7 MB (skops 2.2, ONNX 0.5).
Tree arrays compress well: zstd level 1 makes the skops archive 0.18 of its size in
2.5 ms and the ONNX graph 0.18 in 0.8 ms (zlib level 1: 0.21 in 9.5 ms). Reading them
back costs 2.4 and 0.7 ms, once per model load. On Azure the saving is bandwidth and
storage.

A file's identity is unchanged: its ``sha256`` and ``size_bytes`` are those of the file
itself, checked after decompression, so a changed compressed byte fails the hash check
like any other. Decompression is bounded by the recorded size: a frame that does not
declare exactly that size is not decompressed.
"""

from __future__ import annotations

from typing import Any

ZSTD = "zstd"
ENCODINGS = (ZSTD,)
_LEVEL = 1
_MIN_BYTES = 1024  # smaller files (profiles, plot numbers of tiny rooms): not worth a frame
_MAX_RATIO = 0.9  # stored as is unless compression saves at least a tenth


def _zstd() -> Any:
    """Python 3.14's ``compression.zstd``, or its backport (PEP 784) before 3.14. Lazily:
    only training units write packs, and only packed files are read through it."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd
    return zstd


class PackCompressor:
    """Compresses the files of one pack. Not shared between threads (a zstd context is
    not thread-safe); one per :class:`~shared.registry.writing.PackUploads`."""

    def __init__(self) -> None:
        zstd = _zstd()
        self._compressor: Any = zstd.ZstdCompressor(level=_LEVEL)
        self._frame_end = zstd.ZstdCompressor.FLUSH_FRAME

    def compress(self, data: bytes) -> bytes | None:
        """The compressed bytes (one frame that declares its size), or None when the file
        is better stored as it is (small, or already compressed like a PNG)."""
        if len(data) < _MIN_BYTES:
            return None
        packed: bytes = self._compressor.compress(data, mode=self._frame_end)
        return packed if len(packed) <= len(data) * _MAX_RATIO else None


def decompress(data: bytes, encoding: str, size: int) -> bytes | None:
    """``data`` decoded, or None unless it is exactly one ``encoding`` frame declaring
    ``size`` bytes and holding them (changed or cut: the caller's hash check then refuses
    the stored bytes). Never decodes more than ``size`` bytes."""
    if encoding != ZSTD:
        return None
    zstd = _zstd()
    try:
        if zstd.get_frame_info(data).decompressed_size != size:
            return None
        decompressor = zstd.ZstdDecompressor()
        out: bytes = decompressor.decompress(data, max_length=size)
    except zstd.ZstdError:
        return None
    whole = len(out) == size and decompressor.eof and not decompressor.unused_data
    return out if whole else None
