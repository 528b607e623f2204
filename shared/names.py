"""Names of models, datasets, specs and aliases: one rule, checked before storage is touched."""

from __future__ import annotations

import re

from shared.errors import ValidationFailed

NAME_PATTERN = r"^[a-z0-9][a-z0-9\-_.]{0,62}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9\-_]{0,31}$"
_NAME = re.compile(NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)


def check_name(value: str, what: str = "name") -> str:
    """The name itself if valid; 422 otherwise (traversal, slashes, unicode, trailing dot)."""
    if not _NAME.fullmatch(value or "") or ".." in value or value.endswith("."):
        raise ValidationFailed(
            f"Invalid {what} '{value[:80]}': use 1-63 of a-z 0-9 - _ . starting with a letter"
            " or digit, without '..' or a trailing dot.",
            [{"loc": ["path", what], "msg": f"must match {NAME_PATTERN}", "type": "name"}],
        )
    return value


def check_alias(value: str) -> str:
    if not _ALIAS.fullmatch(value or ""):
        raise ValidationFailed(
            f"Invalid alias '{value[:40]}': use a-z 0-9 - _ starting with a letter (max 32).",
            [{"loc": ["path", "alias"], "msg": f"must match {ALIAS_PATTERN}", "type": "alias"}],
        )
    return value
