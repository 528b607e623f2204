"""Whole-file checks of an uploaded model against the format it claims, before loading.

Leading magic bytes prove little: zip readers find their central directory from the end
and accept anything prepended (a pickle followed by a valid skops zip loads as skops,
while a client that unpickles the download runs the pickle), and protobuf parsers skip
fields they do not know. So a skops file must be a zip from its first byte to its last
(first local header at offset 0, end record at the very end, no comment), with safe
member names, a ``schema.json`` and a bounded unpacked size, every member's CRC checked;
an ONNX file must parse as an ``onnx.ModelProto`` that starts with its first field,
carries no unknown fields and passes the ONNX checker.
"""

from __future__ import annotations

import io
import zipfile

from shared.errors import ValidationFailed

ZIP_LOCAL_HEADER = b"PK\x03\x04"
ZIP_END_RECORD = b"PK\x05\x06"
END_RECORD_SIZE = 22
MAX_UNPACKED_BYTES = 1024 * 1024 * 1024  # a skops archive that unpacks past this is a bomb
MAX_MEMBERS = 10_000


def _not_a(fmt: str, why: str) -> ValidationFailed:
    return ValidationFailed(
        f"The file is not a plain {fmt} file: {why}.", code="MODEL_FILE_NOT_AS_DECLARED"
    )


def check_skops(data: bytes) -> None:
    if not data.startswith(ZIP_LOCAL_HEADER):
        raise _not_a("skops", "it does not start with a zip entry (data before the archive?)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _not_a("skops", f"not a valid zip ({type(exc).__name__})") from None
    with archive:
        members = archive.infolist()
        if archive.comment or data.rfind(ZIP_END_RECORD) != len(data) - END_RECORD_SIZE:
            raise _not_a("skops", "data follows the archive's end record")
        if not members or len(members) > MAX_MEMBERS:
            raise _not_a("skops", "no entries, or too many")
        if min(m.header_offset for m in members) != 0:
            raise _not_a("skops", "the first entry is not at offset 0")
        names = [m.filename for m in members]
        if "schema.json" not in names:
            raise _not_a("skops", "no schema.json")
        for name in names:
            parts = name.split("/")
            if (
                name.startswith("/")
                or "\\" in name
                or ".." in parts
                or any(ord(c) < 32 for c in name)
            ):
                raise _not_a("skops", f"unsafe entry name {name[:60]!r}")
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise ValidationFailed(
                "The skops archive unpacks to too many bytes.", code="MODEL_FILE_TOO_LARGE"
            )
        try:
            bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise _not_a("skops", f"an entry cannot be read ({type(exc).__name__})") from None
        if bad is not None:
            raise _not_a("skops", f"entry {bad[:60]!r} is corrupt")


def check_onnx(data: bytes) -> None:
    # ModelProto fields are written in field order: ir_version (field 1, varint) first.
    if not data.startswith(b"\x08"):
        raise _not_a("ONNX", "it does not start with the model's ir_version")
    import onnx
    from google.protobuf import unknown_fields
    from google.protobuf.message import DecodeError

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise _not_a("ONNX", f"not a protobuf ModelProto ({type(exc).__name__})") from None
    if len(unknown_fields.UnknownFieldSet(model)) or not model.HasField("graph"):
        raise _not_a("ONNX", "fields an ONNX model does not have, or no graph")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise _not_a("ONNX", f"the ONNX checker refuses it ({str(exc)[:120]})") from None


def check_model_file(fmt: str, data: bytes) -> None:
    """Refuse (422) a file that is not, as a whole, the format it claims."""
    if fmt == "skops":
        check_skops(data)
    elif fmt == "onnx":
        check_onnx(data)
