"""Issue 15 #6: nobody can lock an account out forever. Failures count per (username,
client address) with a doubling lockout; an account-wide lock (10x the failures over many
addresses) does not stop a known-good client; an admin can unlock. Clients are told apart
by their loopback source address (127.0.0.x), as the front end's X-Forwarded-For would."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


def from_address(host, address: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=host.url, timeout=30, transport=transport)


def attempt(c: httpx.Client, username: str, password: str) -> httpx.Response:
    return c.post("/auth/jwt/login", data={"username": username, "password": password})


def test_an_attacker_locks_only_itself_and_the_lock_grows(host, make_user, admin_headers) -> None:
    user_id, username, password, _ = make_user()  # signs in once from 127.0.0.1
    owner = from_address(host, "127.0.0.1")
    attacker = from_address(host, "127.0.0.2")
    stranger = from_address(host, "127.0.0.3")
    first, _ = lock_out(attacker, username, password)
    # The owner, and anyone else with the right password, still signs in.
    assert attempt(owner, username, password).status_code == 200
    assert attempt(stranger, username, password).status_code == 200

    # Once it expires, the same client's next lockout is twice as long (6 s, not 3).
    time.sleep(first + 0.5)
    second, length = lock_out(attacker, username, password)
    assert length >= 1.5 * LOCKOUT_SECONDS, (first, second, length)
    # An admin clears it at once.
    assert admin_unlock(owner, admin_headers, user_id).status_code == 204
    assert attempt(attacker, username, "wrong-password").status_code == 400


LOCKOUT_FAILURES = 3  # LOGIN_MAX_FAILURES=3, LOGIN_LOCKOUT_SECONDS=3 in the test settings
LOCKOUT_SECONDS = 3


def lock_out(c: httpx.Client, username: str, password: str) -> tuple[int, float]:
    """Fail three times, then the right password: (Retry-After, the lock's length).

    Retry-After counts down from the failure that set the lock, so a slow request (one
    took 4 s in a CI run) shortens it: the length adds the time since that failure began.
    """
    for _ in range(LOCKOUT_FAILURES - 1):
        assert attempt(c, username, "wrong-password").status_code == 400
    started = time.monotonic()
    assert attempt(c, username, "wrong-password").status_code == 400
    locked = attempt(c, username, password)
    assert_problem(locked, 429, "LOGIN_LOCKED")
    retry_after = int(locked.headers["retry-after"])
    return retry_after, retry_after + (time.monotonic() - started)


def admin_unlock(c: httpx.Client, admin_headers: dict, user_id: str) -> httpx.Response:
    return c.post(f"/users/{user_id}/unlock", headers=admin_headers)


def test_an_account_wide_lock_spares_known_good_clients(host, make_user, admin_headers) -> None:
    user_id, username, password, _ = make_user()  # 127.0.0.1 becomes known-good
    for i in range(10):  # 10 addresses x 3 failures = the account-wide threshold (30)
        with from_address(host, f"127.0.1.{i + 1}") as c:
            for _ in range(3):
                assert attempt(c, username, "wrong-password").status_code == 400
    with from_address(host, "127.0.0.9") as new_client:
        assert_problem(attempt(new_client, username, password), 429, "LOGIN_LOCKED")
    with from_address(host, "127.0.0.1") as owner:
        assert attempt(owner, username, password).status_code == 200
        assert admin_unlock(owner, admin_headers, user_id).status_code == 204
        assert_problem(admin_unlock(owner, admin_headers, "no-such-user"), 404)
    with from_address(host, "127.0.0.9") as new_client:
        assert attempt(new_client, username, password).status_code == 200
