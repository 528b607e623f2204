"""Issue 16 item 5: an upload killed mid-write leaves nothing the sweep does not remove."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.fault


def test_sweep_removes_staged_blocks_and_empty_blobs_without_a_version(app_env: Any) -> None:
    from shared.http import current_services

    registry = current_services().model_registry
    container = registry.container
    model = f"orphan-{secrets.token_hex(3)}"
    staged = container.get_blob_client(f"{model}/1/model.onnx")
    staged.stage_block(base64.b64encode(b"00000000").decode(), b"half of a model")
    empty = f"{model}/1/artifacts/notes.txt"
    container.upload_blob(empty, b"")

    def left() -> list[str]:
        return sorted(
            b.name
            for b in container.list_blobs(
                name_starts_with=f"{model}/", include=["uncommittedblobs"]
            )
        )

    assert left() == sorted([f"{model}/1/model.onnx", empty])
    assert registry.sweep_orphans(older_than=timedelta(hours=1)) >= 0
    assert len(left()) == 2  # recent: an upload may still be writing them
    assert registry.sweep_orphans(older_than=timedelta(seconds=-60)) >= 2
    assert left() == []
