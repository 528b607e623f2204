"""Model references as users write them: ``name@3``, ``name@champion``, ``models:/name/3``."""

from __future__ import annotations

import re

from shared.errors import ValidationFailed
from shared.names import ALIAS_PATTERN, check_name

MODEL_REF_FORMS = "name@version, name@alias, models:/name/version or models:/name@alias"
_MODEL_REF = re.compile(
    r"^(?:models:/(?P<uri_name>[^/@]+)(?:/(?P<uri_version>[0-9]{1,9})|@(?P<uri_alias>[^/@]+))"
    r"|(?P<name>[^/@:]+)[@:](?P<selector>[^/@:]+))$"
)


def parse_model_ref(ref: str) -> tuple[str, int | None, str | None]:
    """(name, version, alias) from any accepted form of a model reference.

    ``name@3``, ``name@champion``, MLflow's ``models:/name/3`` and ``models:/name@champion``;
    ``name:3`` too, the form MLflow users type first. The name and alias are checked
    before any storage read; a version is 1 to 9 ASCII digits."""
    match = _MODEL_REF.match(ref)
    if match is None:
        raise ValidationFailed(f"'{ref[:80]}' is not a model reference: use {MODEL_REF_FORMS}.")
    name = match["uri_name"] or match["name"]
    selector = match["uri_version"] or match["uri_alias"] or match["selector"]
    check_name(name, "model")
    if re.fullmatch(r"[0-9]{1,9}", selector, flags=re.ASCII) and int(selector) > 0:
        return name, int(selector), None
    if re.fullmatch(ALIAS_PATTERN, selector) is None:
        raise ValidationFailed(
            f"'{ref[:80]}': '{selector[:40]}' is neither a version (1 to 9 digits) nor an"
            f" alias. Accepted forms: {MODEL_REF_FORMS}."
        )
    return name, None, selector
