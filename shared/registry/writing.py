"""Writing a version's files to Blob, for :class:`~shared.registry.store.ModelRegistry`
(a mixin over its container): each file with its SHA-256 in the blob's metadata, and the
files the platform places streamed with a bounded number in flight."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from types import TracebackType
from typing import Self

from azure.storage.blob import ContainerClient

from shared.registry.compression import ZSTD, PackCompressor
from shared.registry.files import CONTAINER, PlacedFile, sha256_hex
from shared.registry.schemas import StoredFile

# Files of one version uploading at once: parallel enough to hide Blob latency, few enough
# that a version of many partitions is never held whole in memory.
UPLOADS_IN_FLIGHT = 16
# A pack goes up in segments of about this size, at most this many at once: the memory a
# unit's uploads hold is bounded by their product (plus one file larger than a segment)
# whatever the number of partitions.
PACK_SEGMENT_BYTES = 8 * 1024**2
PACK_SEGMENTS_IN_FLIGHT = 3


class _PooledUploads:
    """A context whose exit waits for (or cancels) the uploads its pool still holds."""

    _pool: ThreadPoolExecutor

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class VersionUploads(_PooledUploads):
    """Files uploaded into one version's folder while they are produced.

    A training unit hands each partition's files over as soon as they exist, so the
    uploads overlap the next partition's fit (Blob and Azurite work while the CPU trains),
    with at most ``in_flight`` files held. Each call of the pool runs in a copy of the
    caller's context, so a request's storage budget applies there too.
    """

    def __init__(self, registry: RegistryWriting, prefix: str, in_flight: int) -> None:
        self._registry = registry
        self._prefix = prefix
        self._in_flight = in_flight
        self._pool = ThreadPoolExecutor(max_workers=min(8, in_flight), thread_name_prefix="place")
        self._pending: dict[Future[StoredFile], str] = {}
        self._order: list[str] = []
        self._stored: dict[str, StoredFile] = {}

    def add(self, item: PlacedFile) -> None:
        if len(self._pending) >= self._in_flight:
            self._settle(wait(self._pending, return_when=FIRST_COMPLETED).done)
        context = contextvars.copy_context()
        future = self._pool.submit(
            context.run,
            self._registry._upload,
            self._prefix + item.relative_path,
            item.data,
            item.role,
            item.format,
        )
        self._pending[future] = item.relative_path
        self._order.append(item.relative_path)

    def finish(self) -> dict[str, StoredFile]:
        """Wait for every upload; the stored files by relative path, in the order added.
        The first failed upload raises here."""
        self._settle(wait(self._pending).done)
        return {relative: self._stored[relative] for relative in self._order}

    def _settle(self, done: Iterable[Future[StoredFile]]) -> None:
        for future in done:
            self._stored[self._pending.pop(future)] = future.result()


class PackUploads(_PooledUploads):
    """Files of one training unit written one after another into a few blobs of its
    version, the unit's pack: segments ``packs/u000003-000000.bin``, ``-000001`` ... of
    about ``PACK_SEGMENT_BYTES`` each, every file whole in one segment. Each file's record
    says where it is (``pack``: its segment, ``offset``).

    Why: a partition has four files (skops, ONNX, profile, plot numbers), and a blob each
    cost more than the files' bytes. Per 1,000-row room (2.7 MB of files), uploading them
    took 13.3 ms of the unit process's CPU and 28.3 ms of Azurite's with a blob per file,
    8.1 and 21.7 in 8 MiB segments (medians of 5 interleaved rounds of 30 rooms; a single
    blob of 8 MiB blocks took 13.4 and 20.7: the Content-MD5 each block needs, else
    Azurite computes a CRC64 of it in JavaScript, and the copies ate the saving). In a
    unit, the requests' SDK overhead ran on upload threads beside the fit and slowed it.

    Segments are plain blobs, readable once written: a unit that dies leaves whole
    segments, which the unit's retry overwrites (after removing its earlier ones) and the
    fan-in or a cancel removes with the unit's pack (``discard_reserved``). Hashes are
    computed on the pool's threads (hashlib releases the GIL). Files that compress are
    stored zstd-compressed (``shared.registry.compression``: a room's 2.7 MB become 0.5).
    """

    def __init__(self, container: ContainerClient, prefix: str, pack: str) -> None:
        self._container = container
        self._blob_prefix = prefix + pack
        self._prefix = f"{CONTAINER}/{prefix}"
        self._pack = self._prefix + pack
        self._pool = ThreadPoolExecutor(
            max_workers=PACK_SEGMENTS_IN_FLIGHT + 1, thread_name_prefix="pack"
        )
        self._writing: list[Future[object]] = []
        self._segments = 0
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._compressor = PackCompressor()
        # Per file: (placed, segment, offset, size, stored bytes if compressed, its hash
        # being computed); never its bytes, so a unit of many partitions holds at most the
        # segments in flight.
        self._files: list[tuple[PlacedFile, str, int, int, int | None, Future[str]]] = []

    def add(self, item: PlacedFile) -> None:
        digest = self._pool.submit(sha256_hex, item.data)
        placed = PlacedFile(item.relative_path, b"", item.role, item.format)
        segment = f"{self._pack}-{self._segments:06d}.bin"
        compressed = self._compressor.compress(item.data)
        data = item.data if compressed is None else compressed
        stored = None if compressed is None else len(compressed)
        self._files.append((placed, segment, self._buffered, len(item.data), stored, digest))
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= PACK_SEGMENT_BYTES:
            self._write()

    def _write(self) -> None:
        while len(self._writing) >= PACK_SEGMENTS_IN_FLIGHT:
            done, _ = wait(self._writing, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            self._writing = [f for f in self._writing if f not in done]
        name = f"{self._blob_prefix}-{self._segments:06d}.bin"
        data = b"".join(self._chunks)
        self._chunks, self._buffered = [], 0
        self._segments += 1
        context = contextvars.copy_context()
        job = partial(self._container.upload_blob, name, data, overwrite=True)
        self._writing.append(self._pool.submit(context.run, job))

    def finish(self) -> dict[str, StoredFile]:
        """Wait for every segment; the stored files by relative path, in the order added.
        The first failed write raises here."""
        if self._chunks:
            self._write()
        for future in self._writing:
            future.result()
        self._writing = []
        return {
            item.relative_path: StoredFile(
                path=self._prefix + item.relative_path,
                sha256=digest.result(),
                size_bytes=size,
                role=item.role,
                format=item.format,
                pack=segment,
                offset=offset,
                encoding=None if stored is None else ZSTD,
                stored_bytes=stored,
            )
            for item, segment, offset, size, stored, digest in self._files
        }


class RegistryWriting:
    """Blob writes of a new version's files."""

    container: ContainerClient

    def _version_uploads(self, prefix: str, in_flight: int = UPLOADS_IN_FLIGHT) -> VersionUploads:
        return VersionUploads(self, prefix, in_flight)

    def _upload_placed(self, prefix: str, placed: Iterable[PlacedFile]) -> dict[str, StoredFile]:
        """Upload ``placed`` as it is produced, ``UPLOADS_IN_FLIGHT`` at most at a time."""
        with self._version_uploads(prefix) as uploads:
            for item in placed:
                uploads.add(item)
            return uploads.finish()

    def _upload(self, blob_name: str, data: bytes, role: str, fmt: str | None) -> StoredFile:
        digest = sha256_hex(data)
        self.container.upload_blob(blob_name, data, overwrite=True, metadata={"sha256": digest})
        return StoredFile(
            path=f"{CONTAINER}/{blob_name}",
            sha256=digest,
            size_bytes=len(data),
            role=role,
            format=fmt,
        )
