"""Reading blobs in bounded pieces, pinned to the ETag that was listed."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions

from shared.datasets.schemas import DatasetBlob

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

# Range-read size: bounds memory per open blob whatever the client's download defaults.
READ_BLOCK = 4 * 1024 * 1024


def bare_etag(value: str | None) -> str:
    # Listings give ETags bare, response headers quoted: compare them bare.
    return (value or "").strip('"')


def quoted_etag(value: str | None) -> str:
    return f'"{bare_etag(value)}"'


class BlobRangeReader(io.RawIOBase):
    """A seekable, read-only file over one blob version, fetched by HTTP range.

    Every read is pinned to the listed ETag, so a blob replaced mid-read fails with
    ``ResourceModifiedError`` instead of mixing two versions. pyarrow seeks to the footer
    and reads only the column chunks it needs; pandas reads it front to back.
    """

    def __init__(self, container: ContainerClient, blob: DatasetBlob) -> None:
        super().__init__()
        self._container = container
        self._blob = blob
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._blob.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._blob.size - self._pos)
        if want <= 0:
            return 0
        data = self._container.download_blob(
            self._blob.path,
            offset=self._pos,
            length=want,
            etag=quoted_etag(self._blob.etag),
            match_condition=MatchConditions.IfNotModified,
            max_concurrency=1,
        ).readall()
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class HashingReader(io.RawIOBase):
    """Passes a stream through, hashing every byte read, so parsing and hashing share a pass."""

    def __init__(self, inner: io.RawIOBase | io.BufferedIOBase) -> None:
        super().__init__()
        self._inner = inner
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._inner.readinto(buffer) or 0
        self.sha256.update(memoryview(buffer)[:n])
        return n

    def drain(self) -> str:
        """Hash what the parser did not read (it stops at an error); the full digest."""
        block = bytearray(READ_BLOCK)
        while self.readinto(block):
            pass
        return self.sha256.hexdigest()
