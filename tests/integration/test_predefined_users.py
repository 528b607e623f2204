"""Pre-defined users over Azurite: created when absent, never overwritten, one bad entry
does not stop the others."""

from __future__ import annotations

import uuid

import pytest

from shared.identity.passwords import verify_password
from shared.identity.predefined import ensure_predefined_users
from shared.identity.users import UserStore
from shared.settings import Settings
from shared.storage import Storage

pytestmark = pytest.mark.integration


class DictSecrets:
    source = "test"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def check(self, name: str, timeout: float) -> None:
        return None


@pytest.fixture()
def users(azurite: object) -> UserStore:
    storage = Storage.from_settings(
        Settings(STORAGE_CONNECTION_STRING=azurite.connection_string)  # type: ignore[attr-defined]
    )
    return UserStore(storage.table(f"Users{uuid.uuid4().hex[:8]}"))


def settings_with(entries: list[dict], env: str = "azure") -> Settings:
    return Settings(PREDEFINED_USERS=entries, APP_ENVIRONMENT=env)


ENTRIES = [
    {"username": "ops-admin", "roles": ["admin"], "password_secret": "ops-admin-password"},
    {
        "username": "adf-service",
        "roles": ["train-service"],
        "password_secret": "adf-service-password",
    },
]
SECRETS = {
    "ops-admin-password": "correct horse battery staple",
    "adf-service-password": "another long service password",
}


def test_listed_users_are_created_with_their_roles_and_secret_passwords(users: UserStore) -> None:
    created = ensure_predefined_users(settings_with(ENTRIES), DictSecrets(SECRETS), users)
    assert created == ["ops-admin", "adf-service"]
    adf = users.get_by_username("adf-service")
    assert adf is not None and adf.roles == ["train-service"]
    assert verify_password(adf.password_hash, SECRETS["adf-service-password"])


def test_existing_users_are_never_overwritten(users: UserStore) -> None:
    ensure_predefined_users(settings_with(ENTRIES), DictSecrets(SECRETS), users)
    changed = {k: v + " but changed" for k, v in SECRETS.items()}
    created = ensure_predefined_users(settings_with(ENTRIES), DictSecrets(changed), users)
    assert created == []
    admin = users.get_by_username("ops-admin")
    assert admin is not None
    assert verify_password(admin.password_hash, SECRETS["ops-admin-password"])


def test_a_bad_entry_is_skipped_and_the_others_created(users: UserStore) -> None:
    entries = [
        {"username": "no-secret", "roles": ["admin"], "password_secret": "absent"},
        {"username": "odd-role", "roles": ["root"], "password_secret": "ops-admin-password"},
        {"username": "weak", "roles": ["user"], "password_secret": "weak"},
        *ENTRIES,
    ]
    secrets = DictSecrets({**SECRETS, "weak": "short"})
    created = ensure_predefined_users(settings_with(entries), secrets, users)
    assert created == ["ops-admin", "adf-service"]
    for skipped in ("no-secret", "odd-role", "weak"):
        assert users.get_by_username(skipped) is None


def test_malformed_setting_is_refused() -> None:
    with pytest.raises(ValueError):
        settings_with([{"username": "x", "roles": [], "password_secret": "s"}])
    with pytest.raises(ValueError):
        settings_with([{"username": "x", "roles": ["admin"], "password_secret": "bad/name"}])
