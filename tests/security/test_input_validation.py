"""Issue 15 #8: every name and route parameter is validated before storage; odd input
is a clean 4xx problem+json (never 500 or 503) and changes nothing."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import upload
from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e

LONG = "a" * 20_000
ODD = ["..%2fx", "..%2F..%2Fmodels", "x%00y", "%E2%80%AE", "demo-iris%C2%B2", "A" * 300]


def cases(name: str) -> list[tuple[str, str, dict | None]]:
    """(method, url, json) for every route with a name, id or alias parameter."""
    rec = {"records": [{"a": 1.0, "b": 2.0}]}
    return [
        ("POST", f"/predict/{name}", rec),
        ("POST", f"/predictions/{name}/feedback", {"actual": 1}),
        ("DELETE", f"/roles/{name}", None),
        ("GET", f"/roles/{name}", None),
        ("PUT", f"/roles/{name}", {"scopes": ["predict"]}),
        ("GET", f"/models/{name}", None),
        ("DELETE", f"/models/{name}", None),
        ("GET", f"/models/{name}/versions/1", None),
        ("GET", f"/models/{name}/aliases/champion", None),
        ("GET", f"/models/sec-x/aliases/{name}", None),
        ("PUT", f"/models/sec-x/aliases/{name}", {"version": 1}),
        ("POST", f"/models/{name}/drift", rec),
        ("GET", f"/models/{name}/traffic", None),
        ("GET", f"/datasets/{name}", None),
        ("DELETE", f"/datasets/{name}", None),
        ("GET", f"/users/{name}", None),
        ("PATCH", f"/users/{name}", {"email": "a@example.com"}),
        ("DELETE", f"/users/{name}", None),
        ("POST", f"/users/{name}/unlock", None),
        ("DELETE", f"/api-keys/{name}", None),
        ("GET", f"/train/specs/{name}", None),
        ("DELETE", f"/train/specs/{name}", None),
        ("GET", f"/train/jobs/{name}", None),
        ("GET", f"/predict/jobs/{name}", None),
        ("GET", f"/v2/models/{name}", None),
        ("POST", f"/v2/models/{name}/infer", {"inputs": []}),
    ]


@pytest.mark.parametrize("name", [*ODD, LONG], ids=[*ODD[:5], "300-chars", "20000-chars"])
def test_odd_names_in_every_route_are_clean_4xx(client, admin_headers, storage_state, name) -> None:
    before = storage_state()
    for method, url, body in cases(name):
        r = client.request(method, url, headers=admin_headers, json=body)
        assert r.status_code in (400, 404, 414, 422), (
            method,
            url[:120],
            r.status_code,
            r.text[:300],
        )
        if r.status_code != 414:
            assert r.headers["content-type"].startswith("application/problem+json")
    assert storage_state() == before


def test_an_invalid_role_name_is_not_a_204(client, admin_headers) -> None:
    for bad in ("Bad Role!", "x" * 100, "..%2fx"):
        assert_problem(client.delete(f"/roles/{bad}", headers=admin_headers), (404, 422))


@pytest.mark.parametrize(
    "ref", ["demo-iris@²", "demo-iris@" + "9" * 5000, "@1", "x@", "a" * 20_000 + "@1", "x@1@2"]
)
def test_compare_refs_are_validated(client, admin_headers, ref) -> None:
    r = client.post("/models/compare", headers=admin_headers, json={"models": [ref]})
    assert_problem(r, (404, 422))


def test_huge_integer_features_are_refused(client, admin_headers, regressor) -> None:
    name, _ = regressor
    r = client.post(
        f"/predict/{name}", headers=admin_headers, json={"records": [{"a": 10**400, "b": 1}]}
    )
    assert_problem(r, 422)
    tensor = {"name": "input", "shape": [1, 2], "datatype": "FP64", "data": [10**400, 1]}
    r = client.post(f"/v2/models/{name}/infer", headers=admin_headers, json={"inputs": [tensor]})
    assert_problem(r, (400, 422))
    for datatype in ("INT64", "FP32"):
        a = {"name": "a", "shape": [1], "datatype": datatype, "data": [10**400]}
        b = {"name": "b", "shape": [1], "datatype": datatype, "data": [1]}
        r = client.post(f"/v2/models/{name}/infer", headers=admin_headers, json={"inputs": [a, b]})
        assert_problem(r, (400, 422))


@pytest.fixture(scope="module")
def skops_model() -> bytes:
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    return sio.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))


def test_too_many_artifact_parts_are_refused_without_an_orphan(
    client, admin_headers, storage_state, skops_model
) -> None:
    before = storage_state()
    r = upload(
        client,
        admin_headers,
        "sec-many-parts",
        skops_model,
        filename="m.skops",
        artifacts=[(f"a{i}.txt", b"x") for i in range(3000)],
    )
    assert_problem(r, (413, 422))
    assert storage_state() == before


@pytest.mark.parametrize(
    "filename", ["evil.txt\n", "a\rb.txt", "tab\t.txt", "nul\x00.txt", "../up.txt", "a/b.txt"]
)
def test_artifact_filenames_with_control_characters_are_refused(
    client, admin_headers, storage_state, skops_model, filename
) -> None:
    before = storage_state()
    r = upload(client, admin_headers, "sec-bad-artifact", b"\x08\x07", artifacts=[(filename, b"x")])
    assert_problem(r, (400, 422))
    assert storage_state() == before
