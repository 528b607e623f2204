"""Columnar bodies of POST /predict/{model} (issue 10, large online batches), over the real
HTTP path against Azurite: the same answers as records for the same rows, MLflow client
bodies, and clean problem+json refusals that change nothing in storage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.e2e.conftest import FEATURES, frame_of, records_of, trained_forest, without_ids
from tests.security.conftest import EXPECTED_WRITERS, assert_problem, snapshot

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def classifier(host) -> str:
    """A random forest trained through the platform (served by its ONNX export)."""
    return trained_forest(host, "col", frame_of(0, 400))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = frame_of(1, 60)[FEATURES].astype(object)
    frame.iloc[3, 1] = None  # a missing value travels as null in every form
    return frame


def test_columnar_bodies_answer_as_records_for_the_same_rows(
    client, admin_headers, classifier, rows
) -> None:
    url = f"/predict/{classifier}"
    records = client.post(
        url,
        headers=admin_headers,
        json={"records": records_of(rows), "return_probabilities": True},
    )
    assert records.status_code == 200, records.text
    expected = without_ids(records.json())
    assert len(expected["predictions"]) == len(rows) and expected["classes"] == ["no", "yes"]
    columns = list(reversed(FEATURES))  # any column order
    data = rows[columns].to_numpy().tolist()
    for body in (
        {"columns": columns, "data": data, "return_probabilities": True},
        {"dataframe_split": {"columns": columns, "data": data}, "return_probabilities": True},
        {"dataframe_records": records_of(rows), "return_probabilities": True},
        {"instances": records_of(rows), "return_probabilities": True},
        {"inputs": records_of(rows), "return_probabilities": True},
        {
            "inputs": {c: rows[c].tolist() for c in columns},  # MLflow's columnar inputs
            "return_probabilities": True,
        },
    ):
        r = client.post(url, headers=admin_headers, json=body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/json")
        assert without_ids(r.json()) == expected
        assert r.headers["x-model-version"] == records.headers["x-model-version"]
    # The labels are the model's on those rows (not just the same between forms).
    assert set(expected["predictions"]) <= {"yes", "no"}
    assert all(abs(sum(p) - 1) < 1e-6 for p in expected["probabilities"])


def test_an_mlflow_client_body_works_unchanged(client, admin_headers, classifier, rows) -> None:
    """What MLflow's scoring clients send: pandas' split orient (with its index) as JSON."""
    frame = rows.astype(float)
    payload = '{"dataframe_split": ' + frame.to_json(orient="split") + "}"
    r = client.post(
        f"/predict/{classifier}",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=payload.encode(),
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == len(frame)
    records = client.post(
        f"/predict/{classifier}", headers=admin_headers, json={"records": records_of(rows)}
    )
    assert r.json()["predictions"] == records.json()["predictions"]


def test_a_partitioned_model_scores_a_columnar_body(client, admin_headers, trained_rooms) -> None:
    name, _, frame = trained_rooms
    part = frame[frame.room == "r1"].head(20)
    records = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": part[["hour", "co2"]].to_dict("records"), "partition": "r1"},
    )
    columnar = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={
            "columns": ["co2", "hour"],
            "data": part[["co2", "hour"]].values.tolist(),
            "partition": "r1",
        },
    )
    assert records.status_code == columnar.status_code == 200, columnar.text
    assert without_ids(columnar.json()) == without_ids(records.json())
    assert columnar.json()["partition"] == "r1" and "scores" in columnar.json()


def test_nan_tokens_are_missing_values_in_both_forms(client, admin_headers, classifier) -> None:
    raw = {
        "records": b'{"records": [{"f0": NaN, "f1": 0.5, "f2": -1, "f3": 2, "n_items": 3}]}',
        "columns": b'{"columns": ["f0", "f1", "f2", "f3", "n_items"],'
        b' "data": [[NaN, 0.5, -1, 2, 3]]}',
        "null": b'{"columns": ["f0", "f1", "f2", "f3", "n_items"],'
        b' "data": [[null, 0.5, -1, 2, 3]]}',
    }
    headers = {**admin_headers, "Content-Type": "application/json"}
    answers = {
        k: client.post(f"/predict/{classifier}", headers=headers, content=v) for k, v in raw.items()
    }
    assert {r.status_code for r in answers.values()} == {200}
    assert len({json.dumps(r.json()["predictions"]) for r in answers.values()}) == 1


BAD_BODIES = {
    "ragged": ({"columns": FEATURES, "data": [[1, 2, 3, 4, 5], [1, 2, 3]]}, 422, "RAGGED_ROWS"),
    "unknown column": (
        {"columns": [*FEATURES, "room_id"], "data": [[1, 2, 3, 4, 5, 6]]},
        422,
        "UNKNOWN_COLUMN",
    ),
    "missing column": ({"columns": FEATURES[:4], "data": [[1, 2, 3, 4]]}, 422, "MISSING_COLUMN"),
    "duplicate column": (
        {"columns": [*FEATURES, "f0"], "data": [[1, 2, 3, 4, 5, 1]]},
        422,
        "DUPLICATE_COLUMN",
    ),
    "text in a number column": (
        {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4, 5], [1, "x", 3, 4, 5]]}},
        422,
        "VALIDATION_FAILED",
    ),
    "boolean in a number column": (
        {"columns": FEATURES, "data": [[True, 2, 3, 4, 5]]},
        422,
        "VALIDATION_FAILED",
    ),
    "number beyond float": (
        {"columns": FEATURES, "data": [[1, 2, 3, 4, 10**400]]},
        422,
        "VALIDATION_FAILED",
    ),
    "too many rows": (
        {"columns": FEATURES, "data": [[1, 2, 3, 4, 5]] * 501},
        413,
        "TOO_MANY_RECORDS",
    ),
    "two forms": (
        {"columns": FEATURES, "data": [[1, 2, 3, 4, 5]], "records": [{"f0": 1}]},
        422,
        "VALIDATION_FAILED",
    ),
    "no rows": ({"columns": FEATURES, "data": []}, 422, "VALIDATION_FAILED"),
    "data without columns": ({"data": [[1, 2, 3, 4, 5]]}, 422, "VALIDATION_FAILED"),
    "inputs of unequal lengths": (
        {"inputs": {"f0": [1, 2], "f1": [1], "f2": [1, 2], "f3": [1, 2], "n_items": [1, 2]}},
        422,
        "RAGGED_ROWS",
    ),
    "inputs without a feature": (
        {"inputs": {"f0": [1], "f1": [1], "f2": [1], "f3": [1]}},
        422,
        "MISSING_COLUMN",
    ),
    "inputs with an unknown column": (
        {"inputs": {**{f: [1] for f in FEATURES}, "room_id": [7]}},
        422,
        "UNKNOWN_COLUMN",
    ),
    "text in an inputs column": (
        {"inputs": {**{f: [1, 2] for f in FEATURES}, "f2": [1, "x"]}},
        422,
        "VALIDATION_FAILED",
    ),
    "inputs over the row limit": ({"inputs": {f: [1] * 501 for f in FEATURES}}, 413, None),
    "empty inputs": ({"inputs": {}}, 422, "VALIDATION_FAILED"),
    "empty instances": ({"instances": []}, 422, "VALIDATION_FAILED"),
}


def test_bad_columnar_bodies_are_problems_that_change_nothing(
    client, admin_headers, app_env, classifier
) -> None:
    conn = app_env["STORAGE_CONNECTION_STRING"]
    # The prediction log samples every request in the tests: a refusal must not be logged.
    before = snapshot(conn, EXPECTED_WRITERS)
    for case, (body, status, code) in BAD_BODIES.items():
        r = client.post(f"/predict/{classifier}", headers=admin_headers, json=body)
        problem = assert_problem(r, status, code)
        assert problem["detail"], case
        if status == 422 and case not in (
            "two forms",
            "no rows",
            "data without columns",
            "empty inputs",
            "empty instances",
        ):
            assert problem["errors"][0]["loc"], case
    # A value error names the row and the column.
    r = client.post(
        f"/predict/{classifier}",
        headers=admin_headers,
        json=BAD_BODIES["text in a number column"][0],
    )
    assert r.json()["errors"][0]["loc"] == ["dataframe_split", "data", 1, "f1"]
    assert "row 1, column 'f1'" in r.json()["detail"]
    r = client.post(
        f"/predict/{classifier}",
        headers=admin_headers,
        json=BAD_BODIES["text in an inputs column"][0],
    )
    assert r.json()["errors"][0]["loc"] == ["inputs", "f2", 1]
    assert "column 'f2', row 1" in r.json()["detail"]
    assert snapshot(conn, EXPECTED_WRITERS) == before


def test_a_body_over_the_size_limit_is_413(client, admin_headers, classifier) -> None:
    row = "[" + ",".join(["1.0000000000001"] * 5) + "]"
    big = (
        '{"columns": ["f0","f1","f2","f3","n_items"], "data": [' + ",".join([row] * 230_000) + "]}"
    )
    assert len(big) > 16 * 1024 * 1024
    r = client.post(
        f"/predict/{classifier}",
        headers={**admin_headers, "Content-Type": "application/json"},
        content=big.encode(),
    )
    assert_problem(r, 413)


def test_the_prediction_log_keeps_small_columnar_rows_as_records_and_cuts_large_ones(
    client, admin_headers, services, classifier
) -> None:
    """Every request is sampled in the tests; inputs too large for a log entry are cut
    (and, beyond what could ever fit, not even serialised), the row count kept."""
    log = services.prediction_log
    small = {"columns": FEATURES, "data": [[0.5, 1, 2, 3, 4]]}
    long_row = [0.12345678901234566, -1.2345678901234567, 2.000000000000001, 3.5, 4]
    large = {"columns": FEATURES, "data": [long_row] * 500}
    entries = {}
    for case, body in (("small", small), ("large", large)):
        r = client.post(f"/predict/{classifier}", headers=admin_headers, json=body)
        assert r.status_code == 200 and r.headers["x-prediction-logged"] == "true", r.text
        entries[case] = r.headers["x-prediction-id"]
    log.drain(10)
    logged = {case: log.table.get_entity(pid, "p") for case, pid in entries.items()}
    assert json.loads(logged["small"]["inputs"]) == [
        dict(zip(FEATURES, [0.5, 1, 2, 3, 4], strict=True))
    ]
    assert logged["small"]["n_records"] == 1 and not logged["small"]["inputs_truncated"]
    assert logged["large"]["inputs"] == "" and logged["large"]["inputs_truncated"]
    assert logged["large"]["n_records"] == 500
    assert len(json.loads(logged["large"]["outputs"])) == 500
