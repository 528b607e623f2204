"""Blob I/O of batch scoring: outputs staged block by block, inputs read by range."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from shared.datasets.blobs import READ_BLOCK, BlobRangeReader
from shared.datasets.schemas import DatasetBlob

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient


# Staged block size of the output blobs: the memory one open output costs.
BLOCK_BYTES = 8 * 1024 * 1024
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}


# --- blob I/O ------------------------------------------------------------------------------


class BlockBlobWriter(io.RawIOBase):
    """A write-only stream into a block blob: staged in :data:`BLOCK_BYTES` blocks, visible
    only after :meth:`commit` (a failed run leaves nothing behind but uncommitted blocks,
    which Azure drops after a week)."""

    def __init__(self, container: ContainerClient, name: str, content_type: str) -> None:
        super().__init__()
        self._blob = container.get_blob_client(name)
        self._content_type = content_type
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._written = 0
        self.name = name

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        self._written += len(view)
        while len(self._buffer) >= BLOCK_BYTES:
            self._stage(bytes(self._buffer[:BLOCK_BYTES]))
            del self._buffer[:BLOCK_BYTES]
        return len(view)

    def _stage(self, data: bytes) -> None:
        block_id = base64.b64encode(f"{len(self._blocks):08d}".encode()).decode()
        self._blob.stage_block(block_id, data)
        self._blocks.append(block_id)

    def commit(self) -> None:
        from azure.storage.blob import BlobBlock, ContentSettings

        if self._buffer or not self._blocks:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        self._blob.commit_block_list(
            [BlobBlock(block_id=b) for b in self._blocks],
            content_settings=ContentSettings(content_type=self._content_type),
        )


def _blob_of(container: ContainerClient, name: str) -> DatasetBlob:
    props = container.get_blob_client(name).get_blob_properties()
    return DatasetBlob(
        path=name,
        format="parquet",
        size=props.size,
        etag=(props.etag or "").strip('"'),
        last_modified=props.last_modified,
    )


def _reader(container: ContainerClient, blob: DatasetBlob) -> io.BufferedReader:
    return io.BufferedReader(BlobRangeReader(container, blob), READ_BLOCK)
