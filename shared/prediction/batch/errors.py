"""Which failures of a scoring step a retry cannot fix (the chunk or target fails at once)."""

from __future__ import annotations

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

from shared.errors import AppError, NotFound


def deterministic(exc: BaseException) -> bool:
    """Errors a retry cannot fix: bad data, a changed input, a model that cannot score."""
    import pyarrow as pa

    if isinstance(exc, AppError):
        return exc.status < 500
    return isinstance(
        exc,
        ValueError
        | KeyError
        | TypeError
        | pa.ArrowException
        | ResourceModifiedError
        | ResourceNotFoundError,
    )


class NothingToScore(NotFound):
    """POST /predict for every model found no scoring dataset: answered 200 'skipped'."""

    code = "NOTHING_TO_SCORE"
