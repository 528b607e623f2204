"""Issue 15 #10: common and guessable passwords are refused (the list and estimator come
with the pinned zxcvbn package), at registration and at every password change."""

from __future__ import annotations

import secrets

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e

COMMON = ["password1234", "Password123!", "123456789012", "qwertyuiop12", "iloveyou1234"]


def test_common_passwords_are_refused_everywhere(
    client, admin_headers, make_user, storage_state
) -> None:
    user_id, _, password, headers = make_user()
    before = storage_state()
    for weak in COMMON:
        name = f"u{secrets.token_hex(5)}"
        r = client.post(
            "/auth/register", headers=admin_headers, json={"username": name, "password": weak}
        )
        body = assert_problem(r, 422)
        assert any(e["type"] == "weak_password" for e in body["errors"]), body
        assert weak not in r.text  # the refusal never echoes the password
        r = client.patch(
            "/users/me", headers=headers, json={"password": weak, "current_password": password}
        )
        assert_problem(r, 422)
        r = client.patch(f"/users/{user_id}", headers=admin_headers, json={"password": weak})
        assert_problem(r, 422)
    assert storage_state() == before


def test_strong_passwords_still_pass() -> None:
    from shared.identity.passwords import check_policy

    for good in ("tulip-orbit-canal-93", "correct horse battery staple", secrets.token_urlsafe(16)):
        check_policy(good, "alice", 12)
