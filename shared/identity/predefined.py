"""Pre-defined users (settings ``PREDEFINED_USERS``): created on first start when absent,
never overwritten, each password read from its own secret (Key Vault in Azure)."""

from __future__ import annotations

from shared.errors import AppError, Conflict
from shared.identity.passwords import check_policy, hash_password
from shared.identity.roles import BUILT_IN
from shared.identity.users import USERNAME_RE, UserStore
from shared.observability import get_logger
from shared.secrets import SecretStore
from shared.settings import Settings

log = get_logger("bootstrap")


def ensure_predefined_users(
    settings: Settings, secrets: SecretStore, users: UserStore
) -> list[str]:
    """Create the listed users that do not exist yet; the names created now.

    One bad entry (unknown role, missing or weak secret) is logged and skipped so the
    others and the API keep working; it is retried on the next process start.
    """
    created = []
    for entry in settings.predefined_users:
        name = entry.username
        if not USERNAME_RE.match(name):
            log.error("predefined user skipped: invalid username", extra={"username": name})
            continue
        unknown = sorted(set(entry.roles) - set(BUILT_IN))
        if unknown:
            log.error(
                "predefined user skipped: roles must be built in",
                extra={"username": name, "roles": unknown},
            )
            continue
        if users.get_by_username(name) is not None:
            continue  # never overwritten: a changed password or role stays as it is
        password = secrets.get(entry.password_secret)
        if not password:
            log.error(
                "predefined user skipped: its password secret is missing",
                extra={"username": name, "secret": entry.password_secret},
            )
            continue
        try:
            check_policy(password, name, settings.password_min_length)
        except AppError:
            if settings.is_azure:
                log.error("predefined user skipped: weak password", extra={"username": name})
                continue
            log.warning("weak local password for a predefined user", extra={"username": name})
        try:
            users.create(name, hash_password(password), sorted(set(entry.roles)))
        except Conflict:
            continue  # another instance created it a moment ago
        log.info("predefined user created", extra={"username": name, "roles": entry.roles})
        created.append(name)
    return created
