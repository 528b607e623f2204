"""Issue 15 #7: a token issued in the same second as (just before) a password reset dies
with the reset (millisecond precision)."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.conftest import bearer, login
from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


def test_a_token_from_the_same_second_as_a_reset_is_refused(
    client, make_user, storage_state
) -> None:
    _, username, password, headers = make_user()
    for _ in range(5):
        while time.time() % 1 > 0.2:  # start early in a second, so both land in it
            time.sleep(0.01)
        started = time.time()
        token = login(client, username, password)
        new_password = secrets.token_urlsafe(16)
        r = client.patch(
            "/users/me",
            headers=headers,
            json={"password": new_password, "current_password": password},
        )
        assert r.status_code == 200, r.text
        password = new_password
        headers = bearer(login(client, username, password))
        if int(time.time()) == int(started):
            break
    before = storage_state()
    assert_problem(client.get("/users/me", headers=bearer(token)), 401, "TOKEN_REVOKED")
    assert storage_state() == before
    assert client.get("/users/me", headers=headers).status_code == 200
