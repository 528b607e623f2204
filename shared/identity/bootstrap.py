"""Creates the bootstrap admin on first start; never overwrites an existing user."""

from __future__ import annotations

from shared.errors import AppError, Conflict
from shared.identity.passwords import check_policy, hash_password
from shared.identity.users import USERNAME_RE, UserStore
from shared.observability import get_logger
from shared.secrets import SecretStore
from shared.settings import Settings

log = get_logger("bootstrap")


class ConfigurationError(AppError):
    status, code, title = 503, "CONFIGURATION_ERROR", "The service is misconfigured"


def bootstrap_admin(settings: Settings, secrets: SecretStore, users: UserStore) -> bool:
    """Ensure the configured admin exists; True when it was created now."""
    username = settings.bootstrap_admin_username
    if not username:
        return False
    if not USERNAME_RE.match(username):
        raise ConfigurationError("BOOTSTRAP_ADMIN_USERNAME is not a valid username.")
    if users.get_by_username(username) is not None:
        return False
    password = secrets.get(settings.bootstrap_admin_password_secret)
    if not password:
        raise ConfigurationError(
            f"The bootstrap admin password secret '{settings.bootstrap_admin_password_secret}'"
            " is missing."
        )
    try:
        check_policy(password, username, settings.password_min_length)
    except AppError:
        if settings.is_azure:
            raise ConfigurationError("The bootstrap admin password is too weak.") from None
        log.warning("the local bootstrap admin password is weak; Azure mode would refuse it")
    try:
        users.create(username, hash_password(password), ["admin"])
    except Conflict:
        return False  # another instance created it a moment ago
    log.info("bootstrap admin created", extra={"username": username})
    return True
