"""A version's integrity: the row's signature (``signing``) and every file's hash and size."""

from __future__ import annotations

import json

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from shared.registry.compression import decompress
from shared.registry.files import (
    partition_files,
    sha256_hex,
)
from shared.registry.schemas import (
    FileCheck,
    StoredFile,
    VerifyResult,
    VersionInfo,
)
from shared.registry.signing import (
    ModelSignatureInvalid,
    ModelSigner,
    SignatureStatus,
    signed_content,
)


def version_content(info: VersionInfo) -> bytes:
    """What the platform signed for this version (see ``signing.signed_content``)."""
    return signed_content(
        info.name,
        info.version,
        info.format,
        info.task,
        [f.model_dump() for f in info.features] if info.features is not None else None,
        [f.model_dump() for f in info.files],
    )


class RegistryIntegrity:
    """The integrity half of :class:`~shared.registry.store.ModelRegistry` (a mixin)."""

    container: ContainerClient
    signer: ModelSigner

    def get_version(self, name: str, version: int) -> VersionInfo:
        raise NotImplementedError

    def read_file(self, stored: StoredFile) -> bytes:
        raise NotImplementedError

    def _download(self, stored: StoredFile) -> bytes | None:
        """The file's bytes, or None when its blob is gone. A packed file is read as its
        range of the pack (decompressed when stored compressed); a pack too short for it,
        or a frame that does not decode to the file's size, gives the bytes there are (or
        none), so the hash check fails rather than the read."""
        data = self._download_stored(stored)
        if not data or stored.encoding is None:
            return data
        decoded = decompress(data, stored.encoding, stored.size_bytes)
        return data if decoded is None else decoded

    def _download_stored(self, stored: StoredFile) -> bytes | None:
        if stored.pack is None:
            blob_name, offset, length = stored.path.split("/", 1)[1], None, None
        else:
            blob_name, offset, length = (
                stored.pack.split("/", 1)[1],
                stored.offset,
                stored.size_bytes if stored.encoding is None else stored.stored_bytes,
            )
            if length == 0:
                return b"" if self.container.get_blob_client(blob_name).exists() else None
        try:
            return self.container.download_blob(blob_name, offset=offset, length=length).readall()
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the range starts past the pack's end
                return b""
            raise

    def signature_status(self, info: VersionInfo) -> SignatureStatus:
        """Whether the version's row is what the platform signed (see ``signing``)."""
        return self.signer.check(version_content(info), info.signature)

    def check_signature(self, info: VersionInfo) -> None:
        """409 unless the version may be loaded: validly signed, or unsigned where allowed."""
        status = self.signature_status(info)
        if not self.signer.acceptable(status):
            raise ModelSignatureInvalid(
                f"{info.name} version {info.version} is {status.replace('_', ' ')}"
                + (
                    " (signed with a key this platform does not hold)"
                    if status == "unknown_key"
                    else ""
                )
                + ": it will not be loaded.",
                extra={"signature": status},
            )

    # --- integrity ------------------------------------------------------------------------
    def verify(self, name: str, version: int) -> VerifyResult:
        info = self.get_version(name, version)
        stored_files = list(info.files)
        if info.format == "partitioned":
            manifest_file = next(f for f in info.files if f.role == "model")
            try:
                manifest = json.loads(self.read_file(manifest_file))
                stored_files += partition_files(info, manifest)
            except ValueError:
                pass  # a corrupt manifest already fails its own check below
        checks = []
        for stored in stored_files:
            data = self._download(stored)
            actual = sha256_hex(data) if data is not None else None
            ok = actual == stored.sha256 and data is not None and len(data) == stored.size_bytes
            status = "valid" if ok else ("missing" if data is None else "corrupt")
            checks.append(
                FileCheck(
                    path=stored.path,
                    status=status,
                    expected_sha256=stored.sha256,
                    actual_sha256=actual,
                    expected_size=stored.size_bytes,
                    actual_size=None if data is None else len(data),
                )
            )
        signature = self.signature_status(info)
        files_ok = all(c.status == "valid" for c in checks)
        overall = "valid" if files_ok and self.signer.acceptable(signature) else "corrupt"
        return VerifyResult(
            name=name, version=version, status=overall, signature=signature, files=checks
        )
