"""Request and response bodies of the identity routes (also the OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from shared.identity.principal import KNOWN_SCOPES
from shared.pages import Page

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$"
ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{1,39}$"
# Emails are checked by email-validator (pydantic's EmailStr): RFC 5322/6531 syntax, no
# '<script>@x.yz', no special-use domains such as localhost; deliverability is not probed.


class Strict(BaseModel):
    """Request bodies refuse unknown fields: no mass assignment by a stray key."""

    model_config = ConfigDict(extra="forbid")


class LoginRequest(BaseModel):
    """OAuth2 password grant as ADF's Web activity and Swagger UI send it (extras ignored)."""

    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    grant_type: Literal["password"] | None = None
    scope: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int


class RegisterRequest(Strict):
    username: str = Field(pattern=USERNAME_PATTERN)
    password: str = Field(min_length=1, max_length=1024)
    email: EmailStr | None = Field(default=None, max_length=320)
    roles: list[str] | None = Field(default=None, max_length=20)


class MeUpdate(Strict):
    email: EmailStr | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)


class UserAdminUpdate(Strict):
    email: EmailStr | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    roles: list[str] | None = Field(default=None, max_length=20)
    is_active: bool | None = None


class UserView(BaseModel):
    """A user as the API shows it; the password hash never leaves storage."""

    id: str
    username: str
    email: str | None = None
    roles: list[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=20)
    expires_at: datetime | None = None


class ApiKeyView(BaseModel):
    id: str
    name: str
    scopes: list[str]
    owner_id: str
    owner: str
    created_at: datetime
    expires_at: datetime | None = None


class ApiKeyCreated(ApiKeyView):
    key: str = Field(description="The secret; shown once, never retrievable again.")


class RoleBody(BaseModel):
    description: str = Field(default="", max_length=500)
    scopes: list[str] = Field(min_length=1, max_length=len(KNOWN_SCOPES))

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - set(KNOWN_SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; known: {list(KNOWN_SCOPES)}")
        return sorted(set(scopes))


class RoleCreate(RoleBody):
    name: str = Field(pattern=ROLE_NAME_PATTERN)


class Role(BaseModel):
    name: str
    description: str
    scopes: list[str]
    built_in: bool
    updated_at: str | None = None


class UserPage(Page[UserView]):
    pass


class ApiKeyPage(BaseModel):
    items: list[ApiKeyView]
    continuation_token: str | None = None


class RoleList(BaseModel):
    items: list[Role]
