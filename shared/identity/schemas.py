"""Request and response bodies of the identity routes (also the OpenAPI schemas)."""

from __future__ import annotations

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from shared.identity.users import USERNAME_PATTERN, UserView

# Emails are checked by email-validator (pydantic's EmailStr): RFC 5322/6531 syntax, no
# '<script>@x.yz', no special-use domains such as localhost; deliverability is not probed.
T = TypeVar("T")


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


class PageQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    continuation_token: str | None = Field(default=None, max_length=4096)


class Page(BaseModel, Generic[T]):
    items: list[T]
    continuation_token: str | None = None


class UserPage(Page[UserView]):
    pass
