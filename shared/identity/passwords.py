"""Password hashing (Argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from shared.errors import ValidationFailed

# OWASP Password Storage Cheat Sheet, first Argon2id configuration: m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
MAX_PASSWORD_LENGTH = 256

# Verified against when the user does not exist, so both paths cost one Argon2 check.
_DUMMY_HASH = HASHER.hash("timing-equaliser-not-a-real-password")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-time check; an absent hash still costs one verification."""
    try:
        return HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return HASHER.check_needs_rehash(password_hash)


# zxcvbn estimates guesses from its bundled lists (30,000 common passwords, words, names)
# and patterns (sequences, keyboard walks, l33t, years). Below 1e8 guesses is what it
# calls "too guessable"; only the first characters are scored, to bound its cost.
MIN_GUESSES_LOG10 = 8
SCORED_CHARS = 64


def _common_or_guessable(password: str, username: str) -> bool:
    from zxcvbn import zxcvbn  # lazy: its lists cost ~0.15 s and only password changes need them
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    common = FREQUENCY_LISTS["passwords"]
    lowered = password.lower()
    stripped = lowered.rstrip("0123456789!@#$%^&*?.-_ ")
    if lowered in common or (stripped and stripped in common and len(stripped) >= 4):
        return True
    estimate = zxcvbn(password[:SCORED_CHARS], user_inputs=[username] if username else [])
    return float(estimate["guesses_log10"]) < MIN_GUESSES_LOG10


def check_policy(password: str, username: str, min_length: int) -> None:
    """NIST SP 800-63B: long enough, not absurdly long, not the username, and not a
    common or easily guessed password (zxcvbn's bundled lists and estimator)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"at most {MAX_PASSWORD_LENGTH} characters")
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    if len(set(password)) < 4:
        problems.append("at least 4 different characters")
    if not problems and _common_or_guessable(password, username):
        problems.append("a common or easily guessed password; choose a longer, less usual one")
    if problems:
        raise ValidationFailed(
            "The password is too weak: " + "; ".join(problems) + ".",
            [{"loc": ["password"], "msg": p, "type": "weak_password"} for p in problems],
        )
