"""Access tokens: HS256 JWTs with a pinned algorithm and every claim required."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from shared.errors import Unauthorized

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "sub", "jti", "iss", "aud"]
MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_in: int
    expires_at: int


class TokenService:
    """Signs with ``key``; also verifies with ``previous_keys`` so a key rotation does not
    sign anyone out (docs/operations.md: drop the previous key after one token lifetime)."""

    def __init__(
        self,
        key: bytes,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        previous_keys: tuple[bytes, ...] = (),
    ) -> None:
        for candidate in (key, *previous_keys):
            if len(candidate) < MIN_KEY_BYTES:
                raise ValueError(
                    f"The token signing key must be at least {MIN_KEY_BYTES * 8} bits."
                )
        self._key = key
        self._verify_keys = (key, *(k for k in previous_keys if k != key))
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl_seconds

    def issue(self, user_id: str, username: str) -> IssuedToken:
        now_ms = time.time_ns() // 1_000_000
        now = now_ms // 1000
        jti = uuid.uuid4().hex
        claims = {
            "sub": user_id,
            "name": username,
            "iat": now,
            # iat is whole seconds; a password reset in the same second must still win.
            "iat_ms": now_ms,
            "nbf": now,
            "exp": now + self.ttl,
            "jti": jti,
            "iss": self.issuer,
            "aud": self.audience,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM)
        return IssuedToken(token=token, jti=jti, expires_in=self.ttl, expires_at=now + self.ttl)

    def decode(self, token: str) -> dict:
        """Verified claims; any defect (alg, signature, expiry, audience...) is a 401."""
        for key in self._verify_keys[:-1]:
            try:
                return self._decode(token, key)
            except jwt.InvalidSignatureError:
                continue  # maybe signed with the previous key
            except jwt.ExpiredSignatureError:
                raise Unauthorized("The token has expired.", code="TOKEN_EXPIRED") from None
            except jwt.PyJWTError:
                raise Unauthorized("The token is not valid.", code="TOKEN_INVALID") from None
        try:
            return self._decode(token, self._verify_keys[-1])
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired.", code="TOKEN_EXPIRED") from None
        except jwt.PyJWTError:
            raise Unauthorized("The token is not valid.", code="TOKEN_INVALID") from None

    def _decode(self, token: str, key: bytes) -> dict:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": REQUIRED_CLAIMS},
            leeway=5,
        )
