"""Writing a version's files to Blob, for :class:`~shared.registry.store.ModelRegistry`
(a mixin over its container): each file with its SHA-256 in the blob's metadata, and the
files the platform places streamed with a bounded number in flight."""

from __future__ import annotations

import contextvars
import secrets
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from types import TracebackType

from azure.storage.blob import BlobBlock, ContainerClient

from shared.registry.files import CONTAINER, PlacedFile, sha256_hex
from shared.registry.schemas import StoredFile

# Files of one version uploading at once: parallel enough to hide Blob latency, few enough
# that a version of many partitions is never held whole in memory.
UPLOADS_IN_FLIGHT = 16
# A pack goes up in blocks of this size, at most this many at once: the memory a unit's
# uploads hold is bounded by their product whatever the number of partitions.
PACK_BLOCK_BYTES = 8 * 1024**2
PACK_BLOCKS_IN_FLIGHT = 3


class VersionUploads:
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

    def __enter__(self) -> VersionUploads:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class PackUploads:
    """Files of one training unit written into one blob of its version, ``packs/u….bin``,
    one after another; each file's record says where it is (``pack``, ``offset``).

    Why a pack: a partition has four files (skops, ONNX, profile, plot numbers), and a
    blob each cost a training unit more than the files' bytes: per 1,000-row room (2.7 MB
    of files), training alone took 110 ms, training with a blob per file 167 ms, with a
    pack 131 ms (medians of 6 interleaved rounds of 20 rooms in one process against
    Azurite). The request overhead of the storage SDK ran on the upload threads beside
    the fit, and Azurite answered 4 requests per room instead of one per 8 MiB.

    The pack is staged block by block while the unit trains and committed by
    :meth:`finish`; until then nothing of it is readable, so a unit that dies leaves only
    uncommitted blocks (Blob Storage drops them after a week; the orphan sweep sooner from
    a version never registered). Block ids carry a random per-attempt prefix: a
    redelivered unit commits only its own blocks. Hashes are computed on the pool's
    threads (hashlib releases the GIL)."""

    def __init__(self, container: ContainerClient, prefix: str, pack: str) -> None:
        self._blob = container.get_blob_client(prefix + pack)
        self._prefix = f"{CONTAINER}/{prefix}"
        self._pack = self._prefix + pack
        self._attempt = secrets.token_hex(8)
        self._pool = ThreadPoolExecutor(
            max_workers=PACK_BLOCKS_IN_FLIGHT + 1, thread_name_prefix="pack"
        )
        self._staging: list[Future[None]] = []
        self._blocks: list[BlobBlock] = []
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._offset = 0
        # Per file: (placed, offset, size, its hash being computed); never its bytes, so
        # a unit of many partitions holds at most the blocks in flight.
        self._files: list[tuple[PlacedFile, int, int, Future[str]]] = []

    def add(self, item: PlacedFile) -> None:
        digest = self._pool.submit(sha256_hex, item.data)
        placed = PlacedFile(item.relative_path, b"", item.role, item.format)
        self._files.append((placed, self._offset, len(item.data), digest))
        self._offset += len(item.data)
        self._chunks.append(item.data)
        self._buffered += len(item.data)
        if self._buffered >= PACK_BLOCK_BYTES:
            data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
            view, whole = memoryview(data), len(data) - len(data) % PACK_BLOCK_BYTES
            for start in range(0, whole, PACK_BLOCK_BYTES):
                self._stage(bytes(view[start : start + PACK_BLOCK_BYTES]))
            rest = bytes(view[whole:])
            self._chunks, self._buffered = ([rest] if rest else []), len(rest)

    def _stage(self, data: bytes) -> None:
        while len(self._staging) >= PACK_BLOCKS_IN_FLIGHT:
            done, _ = wait(self._staging, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            self._staging = [f for f in self._staging if f not in done]
        block_id = f"{self._attempt}-{len(self._blocks):06d}"
        context = contextvars.copy_context()
        # validate_content: Content-MD5 on each block, checked by the service. Without it
        # Azurite computes a CRC64 of every block in JavaScript instead, which doubled
        # its CPU per room (51 ms against 26, measured) and slowed two workers beside it.
        job = partial(self._blob.stage_block, block_id, data, validate_content=True)
        self._staging.append(self._pool.submit(context.run, job))
        self._blocks.append(BlobBlock(block_id=block_id))

    def finish(self) -> dict[str, StoredFile]:
        """Commit the pack; the stored files by relative path, in the order added. The
        first failed block raises here. Nothing added: no pack is written."""
        if not self._files:
            return {}
        if self._buffered:
            self._stage(b"".join(self._chunks))
            self._chunks, self._buffered = [], 0
        for future in self._staging:
            future.result()
        self._staging = []
        self._blob.commit_block_list(self._blocks)
        return {
            item.relative_path: StoredFile(
                path=self._prefix + item.relative_path,
                sha256=digest.result(),
                size_bytes=size,
                role=item.role,
                format=item.format,
                pack=self._pack,
                offset=offset,
            )
            for item, offset, size, digest in self._files
        }

    def __enter__(self) -> PackUploads:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


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
