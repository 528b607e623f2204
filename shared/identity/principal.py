"""Who is calling and what a route requires: the vocabulary every layer shares.

Standard library only, so identity code, the HTTP guard and domain services can all
use it without importing each other. A route declares its requirement: ``PUBLIC``,
``SIGNED_IN``, ``ADMIN`` or a scope such as ``"models:read"``; a bearer token or an API
key becomes a :class:`Principal` with scopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Requirement = str
PUBLIC: Requirement = "public"
SIGNED_IN: Requirement = "signed_in"
ADMIN: Requirement = "admin"
ALL_SCOPES = "*"

# Scopes used by the areas of the platform; roles are named sets of these.
KNOWN_SCOPES = (
    "models:read",
    "models:write",
    "train",
    "predict",
    "users:admin",
    "audit:read",
    "metrics:read",
)
# Reading a dataset's rows, by any route (the datasets API, evaluation, drift), needs this.
DATASET_SCOPE = "train"


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    scopes: frozenset[str]
    roles: tuple[str, ...] = ()
    kind: str = "user"  # "user" (bearer token) or "api_key"
    token_id: str | None = None  # jti of the bearer token, or the API key id
    token_expires_at: int | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def is_admin(self) -> bool:
        return ALL_SCOPES in self.scopes

    def has(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes
