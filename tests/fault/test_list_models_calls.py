"""Issue 16 item 8: GET /models costs a bounded number of storage calls, whatever the
number of models (it made one alias query per model)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = pytest.mark.fault


def test_listing_a_page_of_models_makes_two_table_queries(
    host: Any, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from shared.http import current_services
    from tests.fault.conftest import tiny_onnx_bytes, upload

    data = tiny_onnx_bytes()
    prefix = f"count{secrets.token_hex(2)}"
    with httpx.Client(base_url=host.url, timeout=60) as client:
        for i in range(12):
            name = f"{prefix}-{i:02d}"
            assert upload(client, admin_headers, name, data).status_code == 201
            r = client.put(
                f"/models/{name}/aliases/champion", headers=admin_headers, json={"version": 1}
            )
            assert r.status_code == 200
        registry = current_services().model_registry
        queries: list[str] = []
        for table in (registry.models, registry.aliases):
            original = table.query_entities

            def counting(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                queries.append(str(args[0] if args else kwargs.get("query_filter")))
                return _original(*args, **kwargs)

            monkeypatch.setattr(table, "query_entities", counting)
        r = client.get("/models", headers=admin_headers, params={"limit": 200})
        assert r.status_code == 200, r.text
    items = {m["name"]: m for m in r.json()["items"]}
    mine = [n for n in items if n.startswith(prefix)]
    assert len(mine) == 12
    assert all(items[n]["aliases"] == {"champion": 1} for n in mine)
    assert len(queries) == 2, queries  # one page of models, one range of their aliases
