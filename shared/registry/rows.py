"""How versions are keyed in the Models table (PartitionKey = model name)."""

from __future__ import annotations

META = "~meta"  # the model's own row; sorts after every zero-padded version


def row_key(version: int) -> str:
    """A version's RowKey: zero-padded, so rows sort by version number."""
    return f"{version:010d}"
