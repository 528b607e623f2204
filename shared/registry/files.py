"""The files of a version: what an upload brings, what the platform places, where each is.

Blob paths are recorded as ``models/{name}/{version}/{relative path}``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from shared.registry.compression import ENCODINGS
from shared.registry.schemas import (
    StoredFile,
    VersionInfo,
)
from shared.resources import Containers

CONTAINER = Containers.MODELS  # blob paths are recorded as "<container>/<name>"
# A training unit's pack of partition files, in its version folder: ``packs/u000003``,
# written as segments ``packs/u000003-000000.bin``, ``-000001.bin`` ...
PACK = re.compile(r"packs/u[0-9]{6}")
PACK_SEGMENT = re.compile(r"packs/u[0-9]{6}-[0-9]{6}\.bin")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class NewFile:
    """A file of a new version: the model itself, or an artifact kept beside it."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class PlacedFile:
    """A file the platform itself places in a version (serving export, partition models)."""

    relative_path: str
    data: bytes
    role: str  # "serving" or "partition"
    format: str | None = None


def recorded_file(stored: StoredFile, version_prefix: str) -> dict[str, Any]:
    """A partition file as a manifest (or a unit's record) lists it: its hash, size and
    format, and the pack holding it (relative to the version folder) when it is in one."""
    entry: dict[str, Any] = {
        "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
        "format": stored.format,
    }
    if stored.pack is not None:
        entry["pack"] = stored.pack.removeprefix(version_prefix)
        entry["offset"] = stored.offset
        if stored.encoding is not None:
            entry["encoding"] = stored.encoding
            entry["stored_bytes"] = stored.stored_bytes
    return entry


def stored_partition_file(version_prefix: str, relative: str, f: dict[str, Any]) -> StoredFile:
    """The file a manifest entry (:func:`recorded_file`) describes. A pack must lie in the
    version's own ``packs/`` folder: nothing else holds packed files."""
    pack = f.get("pack")
    if pack is not None and not PACK_SEGMENT.fullmatch(str(pack)):
        raise ValueError(f"unexpected pack {str(pack)[:80]!r} for {relative!r}")
    encoding = f.get("encoding")
    if encoding is not None and (pack is None or encoding not in ENCODINGS):
        raise ValueError(f"unexpected encoding {str(encoding)[:20]!r} for {relative!r}")
    return StoredFile(
        path=version_prefix + relative,
        sha256=f["sha256"],
        size_bytes=int(f["size_bytes"]),
        role="partition",
        format=f.get("format"),
        pack=version_prefix + pack if pack is not None else None,
        offset=int(f.get("offset") or 0) if pack is not None else None,
        encoding=encoding,
        stored_bytes=int(f["stored_bytes"]) if encoding is not None else None,
    )


def partition_files(info: VersionInfo, manifest: dict[str, Any]) -> list[StoredFile]:
    """The files a partitioned version's manifest lists, with their recorded hashes."""
    prefix = f"{CONTAINER}/{info.name}/{info.version}/"
    return [
        stored_partition_file(prefix, relative, f)
        for relative, f in sorted(manifest.get("files", {}).items())
    ]


def find_file(
    info: VersionInfo, relative: str, manifest: dict[str, Any] | None = None
) -> StoredFile | None:
    """A file of the version by its path relative to the version folder."""
    path = f"{CONTAINER}/{info.name}/{info.version}/{relative}"
    found = next((f for f in info.files if f.path == path), None)
    if found is None and manifest is not None:
        recorded = manifest.get("files", {}).get(relative)
        if recorded:
            found = stored_partition_file(
                f"{CONTAINER}/{info.name}/{info.version}/", relative, recorded
            )
    return found
