"""Issue 15 #13: estimator parameters are bounded, emails are real addresses, and the
README names every anonymous route."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "params",
    [
        {"n_estimators": 10**9},
        {"n_estimators": 1001},
        {"max_depth": 10**6},
        {"max_iter": 10**9},
        {"n_jobs": -1},
        {"n_estimators": "100"},
        {"n_estimators": [1] * 10_000},
    ],
)
def test_estimator_parameters_are_bounded(client, admin_headers, storage_state, params) -> None:
    spec = {"dataset": "any", "target": "y", "algorithm": "random_forest", "params": params}
    before = storage_state()
    r = client.put(f"/train/specs/sec-{secrets.token_hex(3)}", headers=admin_headers, json=spec)
    assert_problem(r, 422)
    assert storage_state() == before


@pytest.mark.parametrize(
    "email", ["<script>@x.yz", "a@b", "x@@y.io", "a b@c.de", "me@localhost", "x\n@y.io"]
)
def test_emails_must_be_addresses(client, admin_headers, make_user, storage_state, email) -> None:
    user_id, _, _, headers = make_user()
    before = storage_state()
    body = {"username": f"u{secrets.token_hex(5)}", "password": secrets.token_urlsafe(16)}
    r = client.post("/auth/register", headers=admin_headers, json={**body, "email": email})
    assert_problem(r, 422)
    assert_problem(client.patch("/users/me", headers=headers, json={"email": email}), 422)
    r = client.patch(f"/users/{user_id}", headers=admin_headers, json={"email": email})
    assert_problem(r, 422)
    assert storage_state() == before


def test_readme_lists_every_anonymous_route() -> None:
    import function_app  # noqa: F401 - registers the routes
    from shared.http.endpoint import OPERATIONS
    from shared.identity.principal import PUBLIC

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("answer anonymously") - 200 :][:900]
    public = {op.route.split("{")[0].rstrip("/") for op in OPERATIONS if op.auth == PUBLIC}
    for route in public:
        assert re.search(rf"`/{re.escape(route)}[`/|]", section), route
