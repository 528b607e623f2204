"""The files of a version: what an upload brings, what the platform places, where each is.

Blob paths are recorded as ``models/{name}/{version}/{relative path}``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from shared.registry.schemas import (
    StoredFile,
    VersionInfo,
)
from shared.resources import Containers

CONTAINER = Containers.MODELS  # blob paths are recorded as "<container>/<name>"


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


def partition_files(info: VersionInfo, manifest: dict[str, Any]) -> list[StoredFile]:
    """The files a partitioned version's manifest lists, with their recorded hashes."""
    prefix = f"{CONTAINER}/{info.name}/{info.version}/"
    return [
        StoredFile(
            path=prefix + relative,
            sha256=f["sha256"],
            size_bytes=f["size_bytes"],
            role="partition",
            format=f.get("format"),
        )
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
            found = StoredFile(
                path=path,
                sha256=recorded["sha256"],
                size_bytes=recorded["size_bytes"],
                role="partition",
                format=recorded.get("format"),
            )
    return found
