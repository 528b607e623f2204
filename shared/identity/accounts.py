"""Sign-in and account management: the rules, independent of HTTP."""

from __future__ import annotations

import time

from shared.errors import BadRequest, Conflict, Forbidden, NotFound, ValidationFailed
from shared.identity.api_keys import ApiKeyStore
from shared.identity.authenticator import Authenticator
from shared.identity.passwords import check_policy, hash_password, needs_rehash, verify_password
from shared.identity.principal import ALL_SCOPES, KNOWN_SCOPES, Principal
from shared.identity.revocations import RevocationList
from shared.identity.roles import RoleStore
from shared.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyView,
    MeUpdate,
    RegisterRequest,
    TokenResponse,
    UserAdminUpdate,
)
from shared.identity.throttle import LoginThrottle
from shared.identity.tokens import TokenService
from shared.identity.users import StoredUser, UserStore
from shared.tables import utcnow


class Accounts:
    def __init__(
        self,
        users: UserStore,
        roles: RoleStore,
        api_keys: ApiKeyStore,
        tokens: TokenService,
        revocations: RevocationList,
        throttle: LoginThrottle,
        authenticator: Authenticator,
        password_min_length: int,
        allow_self_registration: bool,
    ) -> None:
        self.users = users
        self.roles = roles
        self.api_keys = api_keys
        self.tokens = tokens
        self.revocations = revocations
        self.throttle = throttle
        self.authenticator = authenticator
        self.password_min_length = password_min_length
        self.allow_self_registration = allow_self_registration

    # --- sign-in -------------------------------------------------------------------------
    def login(self, username: str, password: str, client: str = "unknown") -> TokenResponse:
        """A token for the right password; ``client`` is the caller's address (throttling
        is per username and client, see shared.identity.throttle)."""
        self.throttle.check(username, client)
        user = self.users.get_by_username(username)
        # Unknown user and wrong password cost the same Argon2 check and get the same answer.
        valid = verify_password(user.password_hash if user else None, password)
        if not valid or user is None or not user.is_active:
            self.throttle.failure(username, client)
            # The detail matches the FastAPI-Users answer the ADF pipelines already know.
            raise BadRequest("LOGIN_BAD_CREDENTIALS", code="LOGIN_BAD_CREDENTIALS")
        self.throttle.success(username, client)
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
            self.users.save(user)
        issued = self.tokens.issue(user.id, user.username)
        return TokenResponse(access_token=issued.token, expires_in=issued.expires_in)

    def logout(self, principal: Principal) -> None:
        if principal.kind != "user" or not principal.token_id:
            raise BadRequest(
                "Only bearer tokens sign out; delete an API key with DELETE /api-keys/{id}.",
                code="NOT_A_TOKEN",
            )
        self.revocations.revoke(principal.token_id, principal.token_expires_at or 0)

    def unlock(self, user_id: str) -> None:
        """Admin: clear every sign-in lock of the account (404 for an unknown user)."""
        self.throttle.unlock(self.get_user(user_id).username)

    # --- users ---------------------------------------------------------------------------
    def register(self, body: RegisterRequest, caller: Principal | None) -> StoredUser:
        is_admin = caller is not None and caller.is_admin
        if not is_admin:
            if not self.allow_self_registration:
                raise Forbidden("Only an admin can register users.", code="ADMIN_REQUIRED")
            if body.roles:
                raise Forbidden("Self-registration cannot grant roles.", code="ROLES_REQUIRE_ADMIN")
        roles = body.roles if body.roles is not None else ["user"]
        self.roles.require_existing(roles)
        check_policy(body.password, body.username, self.password_min_length)
        return self.users.create(body.username, hash_password(body.password), roles, body.email)

    def get_user(self, user_id: str) -> StoredUser:
        user = self.users.get(user_id)
        if user is None:
            raise NotFound("No such user.", code="USER_NOT_FOUND")
        return user

    def update_me(self, caller: Principal, body: MeUpdate) -> StoredUser:
        user = self.get_user(caller.user_id)
        fields = body.model_fields_set
        if "email" in fields:
            user.email = body.email
        if body.password is not None:
            if not body.current_password or not verify_password(
                user.password_hash, body.current_password
            ):
                raise BadRequest("The current password is wrong.", code="BAD_CURRENT_PASSWORD")
            self._set_password(user, body.password)
        return self._save(user)

    def update_user(self, caller: Principal, user_id: str, body: UserAdminUpdate) -> StoredUser:
        user = self.get_user(user_id)
        fields = body.model_fields_set
        if "email" in fields:
            user.email = body.email
        if body.password is not None:
            self._set_password(user, body.password)
        if body.roles is not None:
            self.roles.require_existing(body.roles)
            if user.id == caller.user_id and "admin" not in body.roles:
                raise Conflict("You cannot remove your own admin role.", code="CANNOT_DEMOTE_SELF")
            user.roles = sorted(set(body.roles))
        if body.is_active is not None:
            if user.id == caller.user_id and not body.is_active:
                raise Conflict("You cannot deactivate yourself.", code="CANNOT_DEACTIVATE_SELF")
            user.is_active = body.is_active
        return self._save(user)

    def delete_user(self, caller: Principal, user_id: str) -> None:
        user = self.get_user(user_id)
        if user.id == caller.user_id:
            raise Conflict("You cannot delete yourself.", code="CANNOT_DELETE_SELF")
        self.users.delete(user)
        self.authenticator.forget(user.id)

    def list_users(
        self, limit: int, continuation: str | None
    ) -> tuple[list[StoredUser], str | None]:
        return self.users.list(limit, continuation)

    def _set_password(self, user: StoredUser, password: str) -> None:
        check_policy(password, user.username, self.password_min_length)
        user.password_hash = hash_password(password)
        user.tokens_valid_after_ms = time.time_ns() // 1_000_000

    def _save(self, user: StoredUser) -> StoredUser:
        saved = self.users.save(user)
        self.authenticator.forget(user.id)
        return saved

    # --- API keys -------------------------------------------------------------------------
    def create_api_key(self, caller: Principal, body: ApiKeyCreate) -> ApiKeyCreated:
        allowed = set(KNOWN_SCOPES) | {ALL_SCOPES}
        unknown = sorted(set(body.scopes) - allowed)
        if unknown:
            raise ValidationFailed(
                f"Unknown scopes: {', '.join(unknown)}.",
                [
                    {"loc": ["scopes"], "msg": f"unknown scope {s}", "type": "scope"}
                    for s in unknown
                ],
            )
        not_held = sorted(
            s for s in body.scopes if not caller.has(s) or (s == ALL_SCOPES and not caller.is_admin)
        )
        if not_held:
            raise Forbidden(
                f"A key cannot have scopes you do not hold: {', '.join(not_held)}.",
                code="SCOPE_NOT_HELD",
            )
        if body.expires_at is not None and body.expires_at <= utcnow():
            raise ValidationFailed("expires_at must be in the future.")
        return self.api_keys.create(
            caller.user_id, caller.username, body.name, body.scopes, body.expires_at
        )

    def list_api_keys(
        self, caller: Principal, limit: int, continuation: str | None
    ) -> tuple[list[ApiKeyView], str | None]:
        return self.api_keys.list(None if caller.is_admin else caller.user_id, limit, continuation)

    def delete_api_key(self, caller: Principal, key_id: str) -> None:
        key = self.api_keys.get(key_id)
        # Someone else's key is "not found": its existence is not the caller's business.
        if key is None or (key.owner_id != caller.user_id and not caller.is_admin):
            raise NotFound("No such API key.", code="API_KEY_NOT_FOUND")
        self.api_keys.delete(key_id)
