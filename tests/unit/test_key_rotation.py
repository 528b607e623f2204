"""Signing-key rotation: tokens signed with the previous key stay valid until they expire."""

import pytest

from shared.errors import Unauthorized
from shared.identity.tokens import TokenService

OLD, NEW, OTHER = b"o" * 32, b"n" * 32, b"x" * 32


def service(key: bytes, previous: tuple[bytes, ...] = (), ttl: int = 60) -> TokenService:
    return TokenService(key, "ml-platform", "ml-platform-api", ttl, previous_keys=previous)


def test_a_token_signed_with_the_previous_key_is_accepted_during_rotation() -> None:
    token = service(OLD).issue("u1", "alice").token
    assert service(NEW, (OLD,)).decode(token)["sub"] == "u1"


def test_new_tokens_are_signed_with_the_new_key_only() -> None:
    token = service(NEW, (OLD,)).issue("u1", "alice").token
    with pytest.raises(Unauthorized):
        service(OLD).decode(token)
    assert service(NEW).decode(token)["sub"] == "u1"


def test_without_the_previous_key_old_tokens_are_refused() -> None:
    token = service(OLD).issue("u1", "alice").token
    with pytest.raises(Unauthorized) as err:
        service(NEW).decode(token)
    assert err.value.code == "TOKEN_INVALID"


def test_an_unknown_key_is_refused_even_with_a_previous_key() -> None:
    token = service(OTHER).issue("u1", "alice").token
    with pytest.raises(Unauthorized):
        service(NEW, (OLD,)).decode(token)


def test_an_expired_token_of_the_previous_key_is_expired_not_retried() -> None:
    token = service(OLD, ttl=-100).issue("u1", "alice").token
    with pytest.raises(Unauthorized) as err:
        service(NEW, (OLD,)).decode(token)
    assert err.value.code == "TOKEN_EXPIRED"


def test_a_short_previous_key_is_refused() -> None:
    with pytest.raises(ValueError):
        service(NEW, (b"short",))
