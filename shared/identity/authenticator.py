"""Turns a bearer token or an API key into a Principal, with short-lived caches.

Users and revocations are read from storage at most every ``cache_seconds`` per
instance, so a deactivated user or a revoked token is refused everywhere within
that time (default 10 s, well inside the 30 s the contract allows).
"""

from __future__ import annotations

import threading
import time

from shared.errors import Unauthorized
from shared.identity.api_keys import ApiKeyStore
from shared.identity.principal import Principal
from shared.identity.revocations import RevocationList
from shared.identity.roles import RoleStore
from shared.identity.tokens import TokenService
from shared.identity.users import StoredUser, UserStore


class Authenticator:
    def __init__(
        self,
        tokens: TokenService,
        users: UserStore,
        roles: RoleStore,
        api_keys: ApiKeyStore,
        revocations: RevocationList,
        cache_seconds: float,
    ) -> None:
        self.tokens = tokens
        self.users = users
        self.roles = roles
        self.api_keys = api_keys
        self.revocations = revocations
        self._cache_seconds = cache_seconds
        self._users: dict[str, tuple[float, StoredUser | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, kind: str, credential: str) -> Principal:
        if kind == "api_key":
            return self._from_api_key(credential)
        return self._from_token(credential)

    def _user(self, user_id: str) -> StoredUser | None:
        now = time.monotonic()
        with self._lock:
            hit = self._users.get(user_id)
        if hit and now - hit[0] < self._cache_seconds:
            return hit[1]
        user = self.users.get(user_id)
        with self._lock:
            if len(self._users) > 50_000:
                self._users.clear()
            self._users[user_id] = (now, user)
        return user

    def forget(self, user_id: str) -> None:
        """Drop this instance's cached copy after a change made here."""
        with self._lock:
            self._users.pop(user_id, None)

    def _active_user(self, user_id: str) -> StoredUser:
        user = self._user(user_id)
        if user is None or not user.is_active:
            raise Unauthorized("The account is missing or inactive.", code="ACCOUNT_INACTIVE")
        return user

    def _from_token(self, token: str) -> Principal:
        claims = self.tokens.decode(token)
        user = self._active_user(str(claims["sub"]))
        issued_ms = claims.get("iat_ms")
        if not isinstance(issued_ms, int) or abs(issued_ms // 1000 - int(claims["iat"])) > 1:
            issued_ms = int(claims["iat"]) * 1000  # start of its second: the strict reading
        if issued_ms <= user.tokens_valid_after_ms:
            raise Unauthorized(
                "The token was issued before a password change.", code="TOKEN_REVOKED"
            )
        if self.revocations.is_revoked(str(claims["jti"])):
            raise Unauthorized("The token has been revoked.", code="TOKEN_REVOKED")
        return Principal(
            user_id=user.id,
            username=user.username,
            scopes=self.roles.scopes_of(user.roles),
            roles=tuple(user.roles),
            kind="user",
            token_id=str(claims["jti"]),
            token_expires_at=int(claims["exp"]),
        )

    def _from_api_key(self, presented: str) -> Principal:
        key = self.api_keys.verify(presented)
        if key is None:
            raise Unauthorized("The API key is not valid.", code="API_KEY_INVALID")
        owner = self._active_user(key.owner_id)
        # A key never outgrows its owner: demoting the owner shrinks the key too.
        owner_scopes = self.roles.scopes_of(owner.roles)
        scopes = (
            owner_scopes
            if "*" in key.scopes and "*" in owner_scopes
            else frozenset(s for s in key.scopes if s in owner_scopes or "*" in owner_scopes)
        )
        return Principal(
            user_id=owner.id,
            username=owner.username,
            scopes=scopes,
            roles=tuple(owner.roles),
            kind="api_key",
            token_id=key.id,
        )
