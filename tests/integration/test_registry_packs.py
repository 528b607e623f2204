"""A training unit's partition files written into one pack blob of the version, against
Azurite: each file read back exactly from its range, nothing readable before the commit,
changed or cut bytes refused by the hash check, and no pack outside the version's
``packs/`` folder accepted."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import Any

import pytest

from shared.registry.files import PlacedFile, partition_files, stored_partition_file
from shared.registry.schemas import VersionInfo

# Sizes chosen around the (shrunk) block size: inside one block, across two, exactly one.
SIZES = [1, 0, 700, 2_500, 1_000, 37, 4_096]
BLOCK = 1_000


@pytest.fixture()
def packed(services: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from azure.storage.blob import BlobClient

    from shared.registry import writing

    monkeypatch.setattr(writing, "PACK_BLOCK_BYTES", BLOCK)
    stage_block, checked = BlobClient.stage_block, []

    def staging(blob: BlobClient, block_id: str, data: bytes, **kwargs: Any) -> Any:
        checked.append(kwargs.get("validate_content"))
        return stage_block(blob, block_id, data, **kwargs)

    monkeypatch.setattr(BlobClient, "stage_block", staging)
    registry = services.model_registry
    name = f"pack-{secrets.token_hex(4)}"
    version = registry.reserve_version(name)
    files = {f"partitions/k{i:02d}/f.bin": os.urandom(size) for i, size in enumerate(SIZES)}
    with registry.version_uploads(name, version, "packs/u000007.bin") as uploads:
        for relative, data in files.items():
            uploads.add(PlacedFile(relative, data, "partition", "bin"))
        pack = f"{name}/{version}/packs/u000007.bin"
        # Blocks went up while files were added; none of it is a readable blob yet.
        assert not list(registry.container.list_blobs(name_starts_with=pack))
        stored = uploads.finish()
    blocks = registry.container.get_blob_client(pack).get_block_list()[0]
    return {
        "registry": registry,
        "name": name,
        "version": version,
        "files": files,
        "stored": stored,
        "pack": pack,
        "blocks": blocks,
        "checked": checked,
    }


def test_each_file_reads_back_from_its_range_of_the_pack(packed: dict[str, Any]) -> None:
    registry, stored, files = packed["registry"], packed["stored"], packed["files"]
    assert list(stored) == list(files)  # in the order added
    # Staged in blocks of the set size (the last one shorter), as the files came, each
    # with its Content-MD5 (else Azurite spends twice the CPU on a CRC64 of its own).
    sizes = [b.size for b in packed["blocks"]]
    assert sizes == [BLOCK] * (sum(SIZES) // BLOCK) + [sum(SIZES) % BLOCK]
    assert packed["checked"] == [True] * len(sizes)
    whole = registry.container.download_blob(packed["pack"]).readall()
    assert whole == b"".join(files.values())
    for relative, data in files.items():
        f = stored[relative]
        assert f.path == f"models/{packed['name']}/{packed['version']}/{relative}"
        assert f.pack == f"models/{packed['pack']}"
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
    assert {e["pack"] for e in manifest["files"].values()} == {"packs/u000007.bin"}
    info = VersionInfo.model_construct(name=packed["name"], version=packed["version"])
    listed = partition_files(info, json.loads(json.dumps(manifest)))
    assert {f.path.removeprefix(prefix): registry.read_file(f) for f in listed} == files


def test_changed_or_cut_pack_bytes_fail_the_hash_check(packed: dict[str, Any]) -> None:
    registry, stored, files = packed["registry"], packed["stored"], packed["files"]
    whole = b"".join(files.values())
    victim = stored["partitions/k03/f.bin"]
    at = victim.offset + 10
    changed = whole[:at] + bytes([whole[at] ^ 0xFF]) + whole[at + 1 :]
    registry.container.upload_blob(packed["pack"], changed, overwrite=True)
    data = registry.read_file(victim)
    assert len(data) == victim.size_bytes
    assert hashlib.sha256(data).hexdigest() != victim.sha256
    assert registry.read_file(stored["partitions/k02/f.bin"]) == files["partitions/k02/f.bin"]

    # Cut inside k03: k03 comes back short, the files after it come back empty (their
    # ranges start past the end: Blob answers 416), none of them matching its hash.
    registry.container.upload_blob(packed["pack"], whole[: at + 1], overwrite=True)
    assert len(registry.read_file(victim)) == at + 1 - victim.offset
    for relative in ("partitions/k05/f.bin", "partitions/k06/f.bin"):
        assert registry.read_file(stored[relative]) == b""

    registry.container.delete_blob(packed["pack"])
    assert registry.read_file(victim) == b""
    assert registry._download(victim) is None  # gone, which verify reports as missing


@pytest.mark.parametrize(
    "pack",
    ["../1/packs/u000001.bin", "packs/../model.json", "partitions/k/model.onnx", "packs/u1.bin"],
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
    with pytest.raises(ValueError, match="not a pack name"):
        services.model_registry.version_uploads("m", 1, pack)
