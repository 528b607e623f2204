"""Writing a version's files to Blob, for :class:`~shared.registry.store.ModelRegistry`
(a mixin over its container): each file with its SHA-256 in the blob's metadata, and the
files the platform places streamed with a bounded number in flight."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType

from azure.storage.blob import ContainerClient

from shared.registry.files import CONTAINER, PlacedFile, sha256_hex
from shared.registry.schemas import StoredFile

# Files of one version uploading at once: parallel enough to hide Blob latency, few enough
# that a version of many partitions is never held whole in memory.
UPLOADS_IN_FLIGHT = 16


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
