"""Where a trained partition's files go in its version, and what a unit tells the fan-in.

A training unit writes its partitions' files straight into the version the planner
reserved for the spec (``partitions/{key}/...``), while it trains the next partition. It
then stages one small record, :func:`unit_record`: per partition, its manifest entry and
the hashes of its files. The fan-in builds the version's manifest from those records and
moves no model bytes itself (before, every partition's files went up to staging in a
bundle, down to the fan-in, and up again to the registry: three passes instead of one).
"""

from __future__ import annotations

import json
from typing import Any

from shared.registry.files import (
    CONTAINER,
    PlacedFile,
    recorded_file,
    stored_partition_file,
)
from shared.registry.schemas import StoredFile
from shared.training.plots import PLOT_DATA, plot_path
from shared.training.staging import staged_plots

# A staged record lists our own files; refuse one that grew beyond what a unit writes.
MAX_RECORD_BYTES = 16 * 1024**2


def partition_layout(key: str, files: dict[str, bytes]) -> tuple[dict[str, Any], list[PlacedFile]]:
    """(the partition's manifest entry, minus metrics and rows; its files to place)."""
    base = f"partitions/{key}/"
    entry: dict[str, Any] = {
        "key": key,
        "skops": base + "model.skops",
        "onnx": None,
        "profile": base + "profile.json",
        "carried_over_from": None,
    }
    placed = [
        PlacedFile(entry["skops"], files["model.skops"], "partition", "skops"),
        PlacedFile(entry["profile"], files["profile.json"], "partition"),
    ]
    if "model.onnx" in files:
        entry["onnx"] = base + "model.onnx"
        placed.append(PlacedFile(entry["onnx"], files["model.onnx"], "partition", "onnx"))
    entry["plots"] = [base + plot for plot in staged_plots(files)]
    for plot, relative in zip(staged_plots(files), entry["plots"], strict=True):
        placed.append(PlacedFile(relative, files[plot], "partition", "png"))
    if PLOT_DATA in files:
        # Drawn when viewed: the PNG paths are listed, their numbers stored.
        entry["plot_data"] = base + PLOT_DATA
        entry["plots"] += [base + plot_path(name) for name in sorted(json.loads(files[PLOT_DATA]))]
        placed.append(PlacedFile(entry["plot_data"], files[PLOT_DATA], "partition", "json"))
    return entry, placed


def version_folder(model: str, version: int) -> str:
    """The prefix of a version's recorded paths: ``models/{model}/{version}/``."""
    return f"{CONTAINER}/{model}/{version}/"


def unit_pack(unit_id: str) -> str:
    """The pack a unit writes its partitions' files into, from its id (``{spec}~{index}``):
    ``packs/u000003``, whose segments are ``packs/u000003-000000.bin`` ..."""
    return f"packs/u{int(unit_id.rsplit('~', 1)[1]):06d}"


def unit_record(
    training: dict[str, Any] | None,
    entries: dict[str, dict[str, Any]],
    stored: dict[str, StoredFile],
    version_prefix: str,
) -> bytes:
    """What a unit stages for the fan-in: the first partition's training summary (the
    version's params, features and task), each partition's entry, every file's hash."""
    files = {relative: recorded_file(f, version_prefix) for relative, f in stored.items()}
    return json.dumps({"training": training, "partitions": entries, "files": files}).encode()


def read_unit_record(
    data: bytes, model: str, version: int
) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], dict[str, StoredFile]]:
    """(training summary, entries by partition key, stored files by relative path). Every
    path must lie in its own partition's folder: nothing else is ever written there."""
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError("a staged unit record is larger than any unit writes")
    record = json.loads(data)
    entries: dict[str, dict[str, Any]] = record["partitions"]
    owners = {relative: key for key, entry in entries.items() for relative in _paths(entry)}
    stored: dict[str, StoredFile] = {}
    for relative, f in record["files"].items():
        key = owners.get(relative)
        if key is None or not relative.startswith(f"partitions/{key}/") or ".." in relative:
            raise ValueError(f"unexpected file {relative!r} in a staged unit record")
        stored[relative] = stored_partition_file(version_folder(model, version), relative, f)
    return record.get("training"), entries, stored


def _paths(entry: dict[str, Any]) -> list[str]:
    kept = [entry.get(field) for field in ("skops", "onnx", "profile", "plot_data")]
    return [p for p in kept if p] + list(entry.get("plots") or [])
