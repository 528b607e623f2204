import base64
import json
import time

import jwt
import pytest

from shared.errors import Unauthorized, ValidationFailed
from shared.identity.passwords import check_policy, hash_password, verify_password
from shared.identity.tokens import TokenService

KEY = b"k" * 32


def service(**kw) -> TokenService:
    args = {"key": KEY, "issuer": "ml-platform", "audience": "ml-platform-api", "ttl_seconds": 60}
    args.update(kw)
    return TokenService(**args)


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "sub": "u1",
        "iat": now,
        "nbf": now,
        "exp": now + 60,
        "jti": "j1",
        "iss": "ml-platform",
        "aud": "ml-platform-api",
    }
    base.update(overrides)
    return base


def test_issued_token_round_trips_with_all_claims() -> None:
    issued = service().issue("u1", "alice")
    decoded = service().decode(issued.token)
    assert decoded["sub"] == "u1" and decoded["jti"] == issued.jti
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"


def test_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        service(key=b"short")


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("token_factory", "code"),
    [
        (lambda: b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".", "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(), b"w" * 32, algorithm="HS256"), "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(), KEY, algorithm="HS512"), "TOKEN_INVALID"),
        (
            lambda: jwt.encode(claims(exp=int(time.time()) - 60), KEY, algorithm="HS256"),
            "TOKEN_EXPIRED",
        ),
        (lambda: jwt.encode(claims(aud="someone-else"), KEY, algorithm="HS256"), "TOKEN_INVALID"),
        (lambda: jwt.encode(claims(iss="evil"), KEY, algorithm="HS256"), "TOKEN_INVALID"),
        (
            lambda: jwt.encode(
                {k: v for k, v in claims().items() if k != "jti"}, KEY, algorithm="HS256"
            ),
            "TOKEN_INVALID",
        ),
        (
            lambda: jwt.encode(claims(nbf=int(time.time()) + 600), KEY, algorithm="HS256"),
            "TOKEN_INVALID",
        ),
    ],
    ids=[
        "alg-none",
        "wrong-key",
        "other-alg",
        "expired",
        "wrong-aud",
        "wrong-iss",
        "no-jti",
        "not-yet-valid",
    ],
)
def test_defective_tokens_are_401(token_factory, code) -> None:
    with pytest.raises(Unauthorized) as err:
        service().decode(token_factory())
    assert err.value.code == code


def test_tampered_payload_is_refused() -> None:
    header, _, signature = service().issue("u1", "alice").token.split(".")
    forged = ".".join([header, b64(claims(sub="admin-id")), signature])
    with pytest.raises(Unauthorized):
        service().decode(forged)


def test_password_hash_verifies_and_is_argon2id() -> None:
    h = hash_password("correct horse battery")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse battery")
    assert not verify_password(h, "wrong horse battery")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")


@pytest.mark.parametrize(
    "password", ["short", "alice-is-my-name-123", "aaaaaaaaaaaaaaaa", "x" * 300]
)
def test_weak_passwords_fail_the_policy(password: str) -> None:
    with pytest.raises(ValidationFailed):
        check_policy(password, "alice", 12)


def test_long_varied_password_passes() -> None:
    check_policy("tulip-orbit-canal-93", "alice", 12)
