"""Small helpers shared by the Table Storage repositories."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import ServiceUnavailable, ValidationFailed

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


def guarded_update(
    table: TableClient,
    read: Callable[[], Any],
    change: Callable[[Any], dict[str, Any] | None],
    *,
    attempts: int = 100,
    contended: str = "The row stayed contended; try again.",
) -> Any:
    """Read a row (``read``), compute from it the fields to merge (``change``), and merge
    them only if nobody wrote the row in between (its ETag); after a concurrent write,
    read again following a short random pause. ``change`` returning None writes nothing.

    The row as read before the write, or None when ``change`` declined. Raises
    ServiceUnavailable(``contended``) when the row stays contended for ``attempts``.
    """
    for attempt in range(attempts):
        e = read()
        fields = change(e)
        if fields is None:
            return None
        try:
            table.update_entity(
                {"PartitionKey": e["PartitionKey"], "RowKey": e["RowKey"], **fields},
                mode=UpdateMode.MERGE,
                etag=e.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return e
        except ResourceModifiedError:
            time.sleep(random.uniform(0, 0.005 * min(attempt + 1, 20)))  # noqa: S311
    raise ServiceUnavailable(contended)


def increment(
    table: TableClient, pk: str, rk: str, counter: str, total: str, by: int = 1
) -> tuple[int, int]:
    """Add to ``counter`` under an ETag guard (a fan-in counter); (new value, ``total``).

    ``total`` is -1 while unset. Raises ServiceUnavailable when the row stays contended.
    """
    e = guarded_update(
        table,
        lambda: table.get_entity(pk, rk),
        lambda e: {counter: int(e.get(counter) or 0) + by},
        attempts=500,
        contended="A fan-in counter stayed contended; the step will retry.",
    )
    return int(e.get(counter) or 0) + by, int(e.get(total, -1))


def transition(
    table: TableClient, pk: str, rk: str, allowed: tuple[str, ...], fields: dict[str, Any]
) -> dict[str, Any] | None:
    """Merge ``fields`` only while the row's ``status`` is one of ``allowed`` (ETag-guarded
    against a concurrent change, e.g. a cancel racing the fan-in). The row as it was
    before, or None when its status does not allow it."""
    return guarded_update(
        table,
        lambda: table.get_entity(pk, rk),
        lambda e: fields if e.get("status") in allowed else None,
        contended="The job row stayed contended; try again.",
    )


def merge(table: TableClient, entity: dict[str, Any], etag: str | None) -> str | None:
    """Merge ``entity``; guarded by ``etag`` when given. The new ETag, or None on a lost race."""
    try:
        meta = table.update_entity(
            entity,
            mode=UpdateMode.MERGE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified
            if etag
            else MatchConditions.Unconditionally,
        )
    except ResourceModifiedError:
        return None
    return meta.get("etag")
