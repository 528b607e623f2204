"""A training unit's partition files packed into a few segment blobs of the version,
against Azurite: each file whole in one segment and read back exactly from its range,
changed or cut bytes refused by the hash check, and no pack outside the version's
``packs/`` folder accepted."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import Any

import pytest

from shared.registry.files import (
    PlacedFile,
    partition_files,
    recorded_file,
    stored_partition_file,
)
from shared.registry.schemas import VersionInfo

# Sizes chosen around the (shrunk) segment size: below it, past it, exactly it.
SIZES = [1, 0, 700, 2_500, 1_000, 37, 4_096]
SEGMENT = 1_000


@pytest.fixture()
def packed(services: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from shared.registry import writing

    monkeypatch.setattr(writing, "PACK_SEGMENT_BYTES", SEGMENT)
    registry = services.model_registry
    name = f"pack-{secrets.token_hex(4)}"
    version = registry.reserve_version(name)
    files = {f"partitions/k{i:02d}/f.bin": os.urandom(size) for i, size in enumerate(SIZES)}
    with registry.version_uploads(name, version, "packs/u000007") as uploads:
        for relative, data in files.items():
            uploads.add(PlacedFile(relative, data, "partition", "bin"))
        stored = uploads.finish()
    segments = sorted(
        b.name for b in registry.container.list_blobs(name_starts_with=f"{name}/{version}/")
    )
    return {
        "registry": registry,
        "name": name,
        "version": version,
        "files": files,
        "stored": stored,
        "segments": segments,
    }


def test_each_file_reads_back_from_its_range_of_its_segment(packed: dict[str, Any]) -> None:
    registry, stored, files = packed["registry"], packed["stored"], packed["files"]
    assert list(stored) == list(files)  # in the order added
    # A segment closes once it holds SEGMENT bytes; every file lies whole in one.
    prefix = f"{packed['name']}/{packed['version']}/packs/u000007-"
    assert packed["segments"] == [f"{prefix}{i:06d}.bin" for i in range(3)]
    sizes = [
        len(registry.container.download_blob(segment).readall()) for segment in packed["segments"]
    ]
    assert sizes == [1 + 0 + 700 + 2_500, 1_000, 37 + 4_096]
    for relative, data in files.items():
        f = stored[relative]
        assert f.path == f"models/{packed['name']}/{packed['version']}/{relative}"
        assert f.pack is not None and f.pack.removeprefix("models/") in packed["segments"]
        assert (f.size_bytes, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert registry.read_file(f) == data
        # Where the bytes lie is the registry's business: not part of the file's record.
        assert "pack" not in f.model_dump() and "offset" not in f.model_dump(mode="json")


def test_a_manifest_entry_names_the_same_range(packed: dict[str, Any]) -> None:
    from shared.registry.files import recorded_file

    registry, stored, files = packed["registry"], packed["stored"], packed["files"]
    prefix = f"models/{packed['name']}/{packed['version']}/"
    manifest = {
        "files": {relative: recorded_file(f, prefix) for relative, f in stored.items()},
    }
    assert {e["pack"] for e in manifest["files"].values()} == {
        s.split("/", 2)[2] for s in packed["segments"]
    }
    info = VersionInfo.model_construct(name=packed["name"], version=packed["version"])
    listed = partition_files(info, json.loads(json.dumps(manifest)))
    assert {f.path.removeprefix(prefix): registry.read_file(f) for f in listed} == files


def test_changed_or_cut_pack_bytes_fail_the_hash_check(packed: dict[str, Any]) -> None:
    registry, stored, files = packed["registry"], packed["stored"], packed["files"]
    first, _, last = packed["segments"]
    victim = stored["partitions/k03/f.bin"]  # in the first segment, after k00-k02
    whole = registry.container.download_blob(first).readall()
    at = victim.offset + 10
    changed = whole[:at] + bytes([whole[at] ^ 0xFF]) + whole[at + 1 :]
    registry.container.upload_blob(first, changed, overwrite=True)
    data = registry.read_file(victim)
    assert len(data) == victim.size_bytes
    assert hashlib.sha256(data).hexdigest() != victim.sha256
    assert registry.read_file(stored["partitions/k02/f.bin"]) == files["partitions/k02/f.bin"]

    # The last segment (k05: 37 bytes, then k06) cut to 20 bytes: k05 comes back short,
    # k06 empty (its range starts past the end: Blob answers 416), neither matching.
    tail = registry.container.download_blob(last).readall()
    registry.container.upload_blob(last, tail[:20], overwrite=True)
    assert registry.read_file(stored["partitions/k05/f.bin"]) == tail[:20]
    assert registry.read_file(stored["partitions/k06/f.bin"]) == b""

    registry.container.delete_blob(last)
    assert registry.read_file(stored["partitions/k06/f.bin"]) == b""
    assert registry._download(stored["partitions/k06/f.bin"]) is None  # verify: missing


@pytest.mark.parametrize(
    "pack",
    [
        "../1/packs/u000001-000000.bin",
        "packs/../model.json",
        "partitions/k/model.onnx",
        "packs/u1-000000.bin",
        "packs/u000001",
    ],
)
def test_no_pack_outside_the_versions_packs_folder(services: Any, pack: str) -> None:
    from shared.training.partition_files import read_unit_record

    entry = {"sha256": "0" * 64, "size_bytes": 1, "format": None, "pack": pack, "offset": 0}
    with pytest.raises(ValueError, match="unexpected pack"):
        stored_partition_file("models/m/1/", "partitions/k/model.onnx", entry)
    record = {
        "training": None,
        "partitions": {"k": {"key": "k", "skops": "partitions/k/model.onnx"}},
        "files": {"partitions/k/model.onnx": entry},
    }
    with pytest.raises(ValueError):
        read_unit_record(json.dumps(record).encode(), "m", 1)
    if pack != "packs/u000001":  # a pack's name, though not a segment's
        with pytest.raises(ValueError, match="not a pack name"):
            services.model_registry.version_uploads("m", 1, pack)


# --- compression -----------------------------------------------------------------------------
def _tree_like(n: int, seed: int) -> bytes:
    """Bytes shaped like a forest's arrays (small ints, repeated floats): they compress."""
    import numpy as np

    rng = np.random.default_rng(seed)
    children = np.repeat(rng.integers(-1, 500, size=n // 16), 2).astype(np.int64)
    thresholds = np.round(rng.normal(size=n // 16), 2)
    return children.tobytes() + thresholds.tobytes()


@pytest.fixture()
def compressed(services: Any) -> dict[str, Any]:
    registry = services.model_registry
    name = f"zpack-{secrets.token_hex(4)}"
    version = registry.reserve_version(name)
    files = {
        "partitions/a/model.skops": _tree_like(200_000, 1),
        "partitions/a/profile.json": b'{"rows": 1000, "columns": []}',  # too small to pay
        "partitions/b/model.onnx": _tree_like(60_000, 2),
        "partitions/b/plot.png": os.urandom(5_000),  # does not compress: stored as is
        "partitions/c/model.skops": _tree_like(200_000, 3),
    }
    with registry.version_uploads(name, version, "packs/u000002") as uploads:
        for relative, data in files.items():
            uploads.add(PlacedFile(relative, data, "partition", relative.rsplit(".", 1)[1]))
        stored = uploads.finish()
    (segment,) = [
        b.name for b in registry.container.list_blobs(name_starts_with=f"{name}/{version}/")
    ]
    return {"registry": registry, "files": files, "stored": stored, "segment": segment}


def test_files_that_compress_are_stored_compressed_and_read_back_exactly(
    compressed: dict[str, Any],
) -> None:
    registry, stored, files = compressed["registry"], compressed["stored"], compressed["files"]
    encodings = {relative: f.encoding for relative, f in stored.items()}
    assert encodings == {
        "partitions/a/model.skops": "zstd",
        "partitions/a/profile.json": None,
        "partitions/b/model.onnx": "zstd",
        "partitions/b/plot.png": None,
        "partitions/c/model.skops": "zstd",
    }
    segment = registry.container.download_blob(compressed["segment"]).readall()
    on_disk = [f.stored_bytes if f.encoding else f.size_bytes for f in stored.values()]
    assert len(segment) == sum(on_disk) < sum(len(d) for d in files.values()) / 2
    for relative, data in files.items():
        f = stored[relative]
        # The file's identity is the file itself, not what is stored.
        assert (f.size_bytes, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert registry.read_file(f) == data
        assert not {"encoding", "stored_bytes"} & set(f.model_dump(mode="json"))
    # The manifest carries the encoding, and a manifest read back decodes the same bytes.
    prefix = stored["partitions/a/model.skops"].path.rsplit("partitions/", 1)[0]
    manifest = json.loads(
        json.dumps({"files": {r: recorded_file(f, prefix) for r, f in stored.items()}})
    )
    assert manifest["files"]["partitions/b/model.onnx"]["encoding"] == "zstd"
    assert "encoding" not in manifest["files"]["partitions/b/plot.png"]
    for relative, entry in manifest["files"].items():
        assert registry.read_file(stored_partition_file(prefix, relative, entry)) == files[relative]


def test_changed_or_cut_compressed_bytes_fail_the_hash_check(compressed: dict[str, Any]) -> None:
    registry, stored, files = compressed["registry"], compressed["stored"], compressed["files"]
    victim, neighbour = stored["partitions/b/model.onnx"], stored["partitions/a/model.skops"]
    whole = registry.container.download_blob(compressed["segment"]).readall()
    at = victim.offset + victim.stored_bytes // 2
    changed = whole[:at] + bytes([whole[at] ^ 0x55]) + whole[at + 1 :]
    registry.container.upload_blob(compressed["segment"], changed, overwrite=True)
    data = registry.read_file(victim)
    assert hashlib.sha256(data).hexdigest() != victim.sha256
    assert registry.read_file(neighbour) == files["partitions/a/model.skops"]

    # Cut inside the last file's frame: it does not decode; what is there comes back.
    last = stored["partitions/c/model.skops"]
    cut = last.offset + 100
    registry.container.upload_blob(compressed["segment"], whole[:cut], overwrite=True)
    assert registry.read_file(last) == whole[last.offset : cut]


def test_a_frame_is_decoded_only_to_the_recorded_size() -> None:
    from shared.registry.compression import _zstd, decompress

    zstd = _zstd()
    big = zstd.compress(b"\0" * 10_000_000, level=1)  # 10 MB of zeros in a few hundred bytes
    assert decompress(big, "zstd", 10) is None  # a bomb against a small recorded size
    assert decompress(big, "zstd", 10_000_000) == b"\0" * 10_000_000
    # A frame that does not declare its size (streamed): not decoded.
    streamed = zstd.ZstdCompressor()
    unsized = streamed.compress(b"x" * 5_000) + streamed.flush()
    assert zstd.get_frame_info(unsized).decompressed_size is None
    assert decompress(unsized, "zstd", 5_000) is None
    small = zstd.compress(b"y" * 5_000)
    assert decompress(small, "zstd", 5_000) == b"y" * 5_000
    assert decompress(small + b"trailing", "zstd", 5_000) is None  # one frame, nothing after
    assert decompress(small + small, "zstd", 5_000) is None
    assert decompress(b"not a frame", "zstd", 11) is None
    assert decompress(big, "gzip", 10_000_000) is None


@pytest.mark.parametrize(
    "entry",
    [
        {"pack": "packs/u000001-000000.bin", "offset": 0, "encoding": "gzip", "stored_bytes": 1},
        {"encoding": "zstd", "stored_bytes": 1},  # compressed, but not in a pack
    ],
)
def test_only_known_encodings_of_packed_files_are_accepted(entry: dict[str, Any]) -> None:
    recorded = {"sha256": "0" * 64, "size_bytes": 1, "format": None, **entry}
    with pytest.raises(ValueError, match="unexpected encoding"):
        stored_partition_file("models/m/1/", "partitions/k/model.onnx", recorded)
