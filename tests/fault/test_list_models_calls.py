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
    prefix = f"0count{secrets.token_hex(2)}"  # "0": on the first page in a full suite
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


def test_the_plot_tree_reads_a_page_of_models_in_bounded_queries(
    host: Any, admin_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /plots_structure without a model took 2-4.5 s in the suite: per model one
    query, per version two more (up to 200 x 10 x 2). The page's version rows and aliases
    are now one range query each; only partitioned versions read their manifest."""
    import httpx

    from shared.http import current_services
    from tests.fault.conftest import tiny_onnx_bytes, upload

    data = tiny_onnx_bytes()
    prefix = f"0tree{secrets.token_hex(2)}"  # "0": on the first page in a full suite
    with httpx.Client(base_url=host.url, timeout=60) as client:
        for i in range(6):
            name = f"{prefix}-{i:02d}"
            for _ in range(2):
                assert upload(client, admin_headers, name, data).status_code == 201
        r = client.put(
            f"/models/{prefix}-00/aliases/champion", headers=admin_headers, json={"version": 2}
        )
        assert r.status_code == 200
        alone = client.get(
            "/plots_structure", headers=admin_headers, params={"model": f"{prefix}-00"}
        )
        assert alone.status_code == 200, alone.text
        registry = current_services().model_registry
        calls: list[str] = []
        for table in (registry.models, registry.aliases):
            for method in ("query_entities", "get_entity"):
                original = getattr(table, method)

                def counting(
                    *args: Any, _original: Any = original, _method: str = method, **kwargs: Any
                ) -> Any:
                    about = [*map(str, args), *map(str, (kwargs.get("parameters") or {}).values())]
                    calls.append(f"{_method} {' '.join(about)}")
                    return _original(*args, **kwargs)

                monkeypatch.setattr(table, method, counting)
        r = client.get("/plots_structure", headers=admin_headers, params={"versions": 50})
        assert r.status_code == 200, r.text
    models = {m["name"]: m for m in r.json()["models"]}
    mine = sorted(n for n in models if n.startswith(prefix))
    assert len(mine) == 6
    assert all([v["version"] for v in models[n]["versions"]] == [2, 1] for n in mine)
    assert models[f"{prefix}-00"] == alone.json()["models"][0]
    assert models[f"{prefix}-00"]["versions"][0]["aliases"] == ["champion"]
    # The page of models (and its aliases), then its version rows and their aliases, as
    # range queries; nothing asks for one of these models alone. (Other tests' partitioned
    # versions, in a full run, read their manifests: that is per version by design.)
    ranges = [c for c in calls if "PartitionKey ge @lo" in c]
    assert len(ranges) <= 3, ranges
    assert not [c for c in calls if f" {prefix}-" in c and "PartitionKey ge" not in c], calls
