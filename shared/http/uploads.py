"""Bounded request bodies: multipart forms and raw uploads.

The size limit is checked against Content-Length before the body is touched; the
parsed form keeps small fields as text and files as bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import azure.functions as func

from shared.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed


@dataclass(frozen=True)
class UploadedFile:
    field_name: str
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def file(self, name: str) -> UploadedFile | None:
        found = self.files.get(name) or []
        return found[0] if found else None


def media_type(req: func.HttpRequest) -> str:
    return (req.headers.get("content-type") or "").split(";")[0].strip().lower()


def bounded_body(req: func.HttpRequest, limit: int) -> bytes:
    """The body, refused with 413 when the declared or actual size is over ``limit``."""
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The upload is larger than the limit of {limit} bytes.")
    body = req.get_body() or b""
    if len(body) > limit:
        raise PayloadTooLarge(f"The upload is larger than the limit of {limit} bytes.")
    return body


def parse_multipart(req: func.HttpRequest, limit: int) -> Form:
    if media_type(req) != "multipart/form-data":
        raise UnsupportedMediaType("Send the upload as multipart/form-data.")
    body = bounded_body(req, limit)
    from python_multipart import parse_form  # lazy: only upload routes need it

    form = Form()

    def on_field(f: object) -> None:
        name = (f.field_name or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
        value = f.value  # type: ignore[attr-defined]
        form.fields[name] = (value or b"").decode("utf-8", "replace")

    def on_file(f: object) -> None:
        name = (f.field_name or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
        fobj = f.file_object  # type: ignore[attr-defined]
        fobj.seek(0)
        form.files.setdefault(name, []).append(
            UploadedFile(
                field_name=name,
                filename=(f.file_name or b"").decode("utf-8", "replace"),  # type: ignore[attr-defined]
                content_type=getattr(f, "content_type", None),
                data=fobj.read(),
            )
        )

    headers = {
        "Content-Type": (req.headers.get("content-type") or "").encode(),
        "Content-Length": str(len(body)).encode(),
    }
    try:
        parse_form(headers, io.BytesIO(body), on_field, on_file)
    except Exception as exc:  # noqa: BLE001 - the parser raises several types on bad input
        raise ValidationFailed(f"The multipart body is malformed: {type(exc).__name__}.") from None
    return form


def read_data_file(req: func.HttpRequest, limit: int) -> tuple[bytes, str, str | None]:
    """A CSV/Parquet upload as (bytes, media type, filename): the raw body, or the
    multipart part named ``file``. Bounded by ``limit`` before it is read whole."""
    from shared.errors import ValidationFailed

    if media_type(req) == "multipart/form-data":
        upload = parse_multipart(req, limit).file("file")
        if upload is None:
            raise ValidationFailed("Send the file in the multipart field 'file'.")
        return upload.data, upload.content_type, upload.filename
    return bounded_body(req, limit), media_type(req), None


# The media types and OpenAPI schema of a CSV/Parquet file upload (datasets, scoring data):
# the raw file, or for multipart/form-data a part named `file` holding it.
DATA_FILE_TYPES = (
    "text/csv",
    "application/vnd.apache.parquet",
    "application/octet-stream",
    "multipart/form-data",
)
DATA_FILE_SCHEMA = {
    "type": "string",
    "format": "binary",
    "description": "The CSV or Parquet file; as multipart/form-data, send it in the 'file' part.",
}
