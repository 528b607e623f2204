"""Issue 15 #11: a model file is validated as a whole as the format it claims: pickles
and polyglots (pickle + zip, data before or after a zip, junk around a protobuf) are
refused and nothing is stored."""

from __future__ import annotations

import io
import pickle
import zipfile

import pytest

from tests.e2e.conftest import upload
from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e


class Payload:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.fixture(scope="module")
def skops_bytes() -> bytes:
    import skops.io as sio
    from sklearn.linear_model import LinearRegression

    return sio.dumps(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]))


@pytest.fixture(scope="module")
def onnx_bytes() -> bytes:
    import numpy as np
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    X = np.array([[0.0], [1.0]], dtype=np.float32)
    return to_onnx(LinearRegression().fit(X, [0.0, 1.0]), X).SerializeToString()


def zip_with(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return out.getvalue()


def test_polyglots_and_pickles_are_refused(
    client, admin_headers, storage_state, skops_bytes, onnx_bytes
) -> None:
    pickle0 = pickle.dumps(Payload(), protocol=0)
    pickle2 = pickle.dumps(Payload(), protocol=2)
    attacks = [
        ("pickle0+zip", pickle0 + skops_bytes, "m.skops"),
        ("pickle2+zip", pickle2 + skops_bytes, "m.skops"),
        ("junk+zip", b"#!/bin/sh\necho hi\n" + skops_bytes, "m.skops"),
        ("zip+trailer", skops_bytes + pickle0, "m.skops"),
        ("zip-no-schema", zip_with({"evil.pkl": pickle2}), "m.skops"),
        ("zip-traversal", zip_with({"schema.json": b"{}", "../x": b"1"}), "m.skops"),
        ("pickle-as-onnx", pickle0, "m.onnx"),
        ("pickle+onnx", pickle0 + onnx_bytes, "m.onnx"),
        ("onnx+junk-field", onnx_bytes + b"\xfa\x07\x03abc", "m.onnx"),
        ("zip-as-onnx", skops_bytes, "m.onnx"),
    ]
    before = storage_state()
    for label, data, filename in attacks:
        r = upload(client, admin_headers, "sec-polyglot", data, filename=filename)
        assert r.status_code in (415, 422), (label, r.text)
        assert_problem(r, (415, 422))
    assert storage_state() == before
    # The honest files still go in.
    ok = upload(client, admin_headers, "sec-honest", skops_bytes, filename="m.skops")
    assert ok.status_code == 201, ok.text
    ok = upload(client, admin_headers, "sec-honest", onnx_bytes, filename="m.onnx")
    assert ok.status_code == 201, ok.text
