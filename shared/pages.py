"""Paging, as every list route answers it: ``?limit=&continuation_token=`` in, a page out."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class PageQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    continuation_token: str | None = Field(default=None, max_length=4096)


class Page(BaseModel, Generic[T]):
    items: list[T]
    continuation_token: str | None = None
