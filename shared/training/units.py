"""How a partitioned spec is cut into queue units, and how a unit's outputs travel.

Many small partitions (1,000 rooms of 1,000 rows) would otherwise cost one queue message,
one staging read and one set of staged files each. A unit therefore carries several
partitions, packed in partition order up to a row budget (``TRAINING_UNIT_ROWS``): a
partition larger than the budget is a unit of its own, so a unit never holds more than
max(budget, largest partition) rows in memory. A cap on partitions per unit keeps the
unit row's per-partition results well under the Table property limit (64 KiB).

(50 partitions of ~300 characters of results each, errors cut to
``MAX_ERROR_CHARS``.)

A partitioned unit writes its partitions' files straight into the reserved version
(``shared.training.partition_files``); a whole model's unit stages its files as one
uncompressed zip (one upload; one read in the fan-in).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence

MAX_PARTITIONS_PER_UNIT = 50
MAX_ERROR_CHARS = 300
# The zip holds our own staged files; refuse anything that grew beyond what a unit stages.
MAX_BUNDLE_MEMBER_BYTES = 2 * 1024**3


def pack(
    partitions: Iterable[tuple[str, int]], row_budget: int, tail: Sequence[int] = ()
) -> list[list[str]]:
    """Group ``(key, rows)`` in the given order into units of at most ``row_budget`` rows
    (a larger partition alone) and at most ``MAX_PARTITIONS_PER_UNIT`` partitions.

    ``tail``: smaller budgets for the last units, the very last first. The units are then
    cut from the end, so the order of partitions and units stays the given one and the
    first unit takes what is left over."""
    items = list(partitions)
    if tail:
        items.reverse()
    units: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for key, n in items:
        budget = tail[len(units)] if len(units) < len(tail) else row_budget
        full = len(current) >= MAX_PARTITIONS_PER_UNIT or (current and rows + n > budget)
        if full:
            units.append(current)
            current, rows = [], 0
        current.append(key)
        rows += n
    if current:
        units.append(current)
    if tail:
        units = [unit[::-1] for unit in reversed(units)]
    return units


def bundle(files: dict[str, dict[str, bytes]]) -> bytes:
    """``{key: {filename: bytes}}`` as one zip (stored, not deflated: the model
    files are already compact and compressing them would cost more than it saves)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for key, named in files.items():
            for filename, data in named.items():
                archive.writestr(f"{key}/{filename}", data)
    return buffer.getvalue()


def unbundle(data: bytes) -> dict[str, dict[str, bytes]]:
    """The inverse of :func:`bundle`."""
    out: dict[str, dict[str, bytes]] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            key, _, filename = info.filename.partition("/")
            # {key}/{file} or {key}/plots/{name}.png: nothing else is ever staged.
            nested = filename.count("/") == 1 and filename.startswith("plots/")
            if (
                info.file_size > MAX_BUNDLE_MEMBER_BYTES
                or not key
                or not filename
                or ".." in filename
                or (filename.count("/") and not nested)
            ):
                raise ValueError(f"unexpected staged file {info.filename!r}")
            out.setdefault(key, {})[filename] = archive.read(info)
    return out
