"""Writing a version's files to Blob, for :class:`~shared.registry.store.ModelRegistry`
(a mixin over its container): each file with its SHA-256 in the blob's metadata, and the
files the platform places streamed with a bounded number in flight."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from azure.storage.blob import ContainerClient

from shared.registry.files import CONTAINER, PlacedFile, sha256_hex
from shared.registry.schemas import StoredFile

# Files of one version uploading at once: parallel enough to hide Blob latency, few enough
# that a version of many partitions is never held whole in memory.
UPLOADS_IN_FLIGHT = 16


class RegistryWriting:
    """Blob writes of a new version's files."""

    container: ContainerClient

    def _upload_placed(
        self, pool: ThreadPoolExecutor, prefix: str, placed: Iterable[PlacedFile]
    ) -> dict[str, StoredFile]:
        """Upload ``placed`` as it is produced, ``UPLOADS_IN_FLIGHT`` at most at a time."""
        stored: dict[str, StoredFile] = {}
        pending: dict[Future[StoredFile], str] = {}

        def settle(done: Iterable[Future[StoredFile]]) -> None:
            for future in done:
                stored[pending.pop(future)] = future.result()

        order: list[str] = []
        for item in placed:
            if len(pending) >= UPLOADS_IN_FLIGHT:
                settle(wait(pending, return_when=FIRST_COMPLETED).done)
            blob = prefix + item.relative_path
            pending[pool.submit(self._upload, blob, item.data, item.role, item.format)] = (
                item.relative_path
            )
            order.append(item.relative_path)
        settle(wait(pending).done)
        return {relative: stored[relative] for relative in order}  # in the order placed

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
