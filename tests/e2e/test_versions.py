"""Listing a model's versions, and every accepted form of a model reference in compare."""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.conftest import upload

pytestmark = pytest.mark.e2e


@pytest.fixture()
def three_versions(client, admin_headers, onnx_model) -> str:
    name = f"vers-{secrets.token_hex(3)}"
    for i, tags in enumerate(({"stage": "dev"}, {"stage": "prod"}, {"stage": "dev", "x": "1"})):
        r = upload(
            client, admin_headers, name, onnx_model, tags=tags, metrics={"accuracy": 0.8 + i / 100}
        )
        assert r.status_code == 201, r.text
    r = client.put(f"/models/{name}/aliases/champion", headers=admin_headers, json={"version": 2})
    assert r.status_code == 200, r.text
    return name


def test_versions_are_listed_paginated_and_filtered(client, admin_headers, three_versions) -> None:
    name, url = three_versions, f"/models/{three_versions}/versions"
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [v["version"] for v in items] == [1, 2, 3]
    assert items[1]["aliases"] == ["champion"] and items[1]["tags"] == {"stage": "prod"}
    assert items[0]["metrics"] == {"accuracy": 0.8} and items[0]["created_by"] == "admin"

    first = client.get(url, headers=admin_headers, params={"limit": 2}).json()
    assert [v["version"] for v in first["items"]] == [1, 2] and first["continuation_token"]
    rest = client.get(
        url,
        headers=admin_headers,
        params={"limit": 2, "continuation_token": first["continuation_token"]},
    ).json()
    assert [v["version"] for v in rest["items"]] == [3] and rest["continuation_token"] is None

    def versions(**params) -> list[int]:
        r = client.get(url, headers=admin_headers, params=params)
        assert r.status_code == 200, r.text
        return [v["version"] for v in r.json()["items"]]

    assert versions(alias="champion") == [2]
    assert versions(alias="challenger") == []
    assert versions(tag="stage=dev") == [1, 3]
    assert versions(tag="x") == [3]
    assert versions(status="deleting") == []
    r = client.get(url, headers=admin_headers, params={"alias": "Bad Alias!"})
    assert r.status_code == 422
    r = client.get(url, headers=admin_headers, params={"order": "desc"})
    assert r.status_code == 422  # unknown query parameters are refused, not ignored
    assert (
        client.get(
            f"/models/nope-{secrets.token_hex(2)}/versions", headers=admin_headers
        ).status_code
        == 404
    )
    assert client.get(url).status_code == 401
    assert name


@pytest.mark.parametrize(
    "ref",
    ["{name}@2", "{name}@champion", "models:/{name}/2", "models:/{name}@champion", "{name}:2"],
)
def test_compare_accepts_every_reference_form(client, admin_headers, three_versions, ref) -> None:
    body = {"models": [ref.format(name=three_versions), f"{three_versions}@3"]}
    r = client.post("/models/compare", headers=admin_headers, json=body)
    assert r.status_code == 200, r.text
    assert [m["version"] for m in r.json()["models"]] == [2, 3]


@pytest.mark.parametrize(
    "ref", ["{name}", "{name}@²", "{name}@" + "9" * 5000, "models:/{name}", "{name}@0", "a/b@1"]
)
def test_compare_names_the_accepted_forms(client, admin_headers, three_versions, ref) -> None:
    body = {"models": [ref.format(name=three_versions)]}
    r = client.post("/models/compare", headers=admin_headers, json=body)
    assert r.status_code == 422, r.text
    assert "models:/name/version" in r.json()["detail"]
