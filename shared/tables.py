"""Small helpers shared by the Table Storage repositories."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.data.tables import TableClient

from shared.errors import ValidationFailed

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def quote(value: str) -> str:
    """A string literal for an OData filter."""
    return "'" + value.replace("'", "''") + "'"


def encode_continuation(token: dict[str, Any] | None) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def decode_continuation(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed("The continuation token is not valid.") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValidationFailed("The continuation token is not valid.")
    return value


def page(
    table: TableClient,
    query_filter: str,
    limit: int,
    continuation: str | None,
    convert: Callable[[dict[str, Any]], T],
    parameters: dict[str, Any] | None = None,
) -> tuple[list[T], str | None]:
    """One page of a Table query and the opaque token of the next page."""
    pager = table.query_entities(
        query_filter, parameters=parameters, results_per_page=limit
    ).by_page(continuation_token=decode_continuation(continuation))
    items: list[T] = []
    page_iter: Iterator[dict[str, Any]] = next(pager, iter(()))
    items = [convert(e) for e in page_iter]
    return items, encode_continuation(pager.continuation_token)
