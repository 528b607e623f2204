"""V2's errors: 400 for every bad request, 503 for a model or server that is not ready."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shared.errors import AppError, BadRequest, ValidationFailed


class InvalidTensor(BadRequest):
    code, title = "INVALID_TENSOR", "Invalid inference request"

    def __init__(
        self,
        detail: str,
        loc: Sequence[str | int] | None = None,
        *,
        code: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        if errors is None:
            errors = [{"loc": list(loc or []), "msg": detail, "type": (code or self.code).lower()}]
        super().__init__(detail, code=code, extra={"errors": errors})


class ModelNotReady(AppError):
    """The version exists but cannot be loaded (integrity, untrusted types, bad file).

    503 like KServe, without Retry-After: a broken file does not mend itself."""

    status, code, title = 503, "MODEL_NOT_READY", "Model not ready"


class ServerNotReady(AppError):
    status, code, title = 503, "SERVER_NOT_READY", "Server not ready"

    def __init__(self, detail: str, failing: list[str]) -> None:
        super().__init__(
            detail, headers={"Retry-After": "5"}, extra={"ready": False, "failing": failing}
        )


@contextmanager
def v2_errors() -> Iterator[None]:
    """V2's error shape on top of problem+json: 400 for bad requests, ``error`` = message."""
    try:
        yield
    except ValidationFailed as exc:
        raise BadRequest(
            exc.detail, code=exc.code, extra={**exc.extra, "error": exc.detail}
        ) from None
    except AppError as exc:
        exc.extra.setdefault("error", exc.detail)
        raise


def refuse_binary(header_length: str | None) -> None:
    """tritonclient's binary tensor extension sends this header; answer clearly, not 415."""
    if header_length:
        raise InvalidTensor(
            "The binary tensor data extension is not supported: send JSON tensors"
            " (tritonclient: binary_data=False on inputs and outputs).",
            ["header", "Inference-Header-Content-Length"],
            code="BINARY_DATA_UNSUPPORTED",
        )
