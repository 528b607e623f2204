"""CSV bodies of POST /predict/{model} (``Content-Type: text/csv``, what MLflow's scoring
server also takes), over the real HTTP path against Azurite: the same answers as records
for the same rows, options in the query string, and problem+json refusals that change
nothing in storage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import FEATURES, frame_of, records_of, trained_forest, without_ids
from tests.security.conftest import EXPECTED_WRITERS, assert_problem, snapshot

pytestmark = pytest.mark.e2e
CSV = {"Content-Type": "text/csv"}


@pytest.fixture(scope="module")
def numbers_model(host) -> str:
    return trained_forest(host, "csvn", frame_of(0, 400))


def mixed_frame(seed: int, n: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "size": rng.normal(50, 10, n).round(2),
            "city": rng.choice(["paris", "lyon", "nice, sud"], n),  # a comma in a value
            "member": rng.choice([True, False], n),
        }
    )
    frame["label"] = np.where((frame["size"] > 50) ^ frame["member"], "yes", "no")
    return frame


@pytest.fixture(scope="module")
def mixed_model(host) -> str:
    return trained_forest(host, "csvm", mixed_frame(0, 300))


def test_a_csv_body_answers_as_records_for_the_same_rows(
    client, admin_headers, numbers_model
) -> None:
    rows = frame_of(1, 60)[FEATURES].astype(object)
    rows.iloc[3, 1] = None  # a missing value: an empty cell
    records = client.post(
        f"/predict/{numbers_model}",
        headers=admin_headers,
        json={"records": records_of(rows), "return_probabilities": True},
    )
    assert records.status_code == 200, records.text
    expected = without_ids(records.json())
    # What pandas writes (as MLflow's clients do), columns in another order.
    text = rows[list(reversed(FEATURES))].to_csv(index=False)
    assert ",," in text  # the missing value is an empty cell
    r = client.post(
        f"/predict/{numbers_model}?return_probabilities=true",
        headers={**admin_headers, **CSV},
        content=text.encode(),
    )
    assert r.status_code == 200, r.text
    assert without_ids(r.json()) == expected
    assert r.headers["x-model-version"] == records.headers["x-model-version"]
    # The version chosen in the query string answers.
    v = records.headers["x-model-version"]
    r = client.post(
        f"/predict/{numbers_model}?version={v}",
        headers={**admin_headers, "Content-Type": "text/csv; charset=utf-8"},
        content=text.encode(),
    )
    assert r.status_code == 200 and r.json()["version"] == int(v), r.text
    assert r.json()["predictions"] == expected["predictions"]


def test_text_and_boolean_features_read_from_csv_cells(client, admin_headers, mixed_model) -> None:
    rows = mixed_frame(1, 40)[["size", "city", "member"]]
    records = client.post(
        f"/predict/{mixed_model}",
        headers=admin_headers,
        json={"records": rows.to_dict("records"), "return_probabilities": True},
    )
    assert records.status_code == 200, records.text
    # pandas quotes "nice, sud" and writes True/False; a UTF-8 BOM (Excel) is skipped.
    text = "\ufeff" + rows.to_csv(index=False)
    assert '"nice, sud"' in text and "True" in text
    r = client.post(
        f"/predict/{mixed_model}?return_probabilities=1",
        headers={**admin_headers, **CSV},
        content=text.encode(),
    )
    assert r.status_code == 200, r.text
    assert without_ids(r.json()) == without_ids(records.json())
    # 1/0 and any case are booleans too; an empty cell is a missing value.
    lines = ["size,city,member", "55.5,paris,TRUE", "40,lyon,0", "60,nice,"]
    r = client.post(
        f"/predict/{mixed_model}",
        headers={**admin_headers, **CSV},
        content="\r\n".join(lines).encode(),
    )
    same = client.post(
        f"/predict/{mixed_model}",
        headers=admin_headers,
        json={
            "records": [
                {"size": 55.5, "city": "paris", "member": True},
                {"size": 40, "city": "lyon", "member": False},
                {"size": 60, "city": "nice", "member": None},
            ]
        },
    )
    assert r.status_code == same.status_code == 200, r.text
    assert r.json()["predictions"] == same.json()["predictions"]


def test_a_partitioned_model_takes_its_partition_from_the_query(
    client, admin_headers, trained_rooms
) -> None:
    name, _, frame = trained_rooms
    part = frame[frame.room == "r1"].head(20)
    records = client.post(
        f"/predict/{name}",
        headers=admin_headers,
        json={"records": part[["hour", "co2"]].to_dict("records"), "partition": "r1"},
    )
    r = client.post(
        f"/predict/{name}?partition=r1",
        headers={**admin_headers, **CSV},
        content=part[["co2", "hour"]].to_csv(index=False).encode(),
    )
    assert records.status_code == r.status_code == 200, r.text
    assert without_ids(r.json()) == without_ids(records.json())
    assert r.json()["partition"] == "r1"


GOOD = "f0,f1,f2,f3,n_items\n0.1,0.2,0.3,0.4,1\n0.5,0.6,0.7,0.8,2\n"
BAD_CSV = {
    "ragged row": ("f0,f1,f2,f3,n_items\n1,2,3,4,5\n1,2,3\n", "", 422, "RAGGED_ROWS"),
    "unknown column": ("f0,f1,f2,f3,n_items,extra\n1,2,3,4,5,6\n", "", 422, "UNKNOWN_COLUMN"),
    "missing column": ("f0,f1,f2,f3\n1,2,3,4\n", "", 422, "MISSING_COLUMN"),
    "duplicate column": ("f0,f1,f2,f3,f0\n1,2,3,4,5\n", "", 422, "DUPLICATE_COLUMN"),
    "text in a number column": ("f0,f1,f2,f3,n_items\n1,2,3,4,5\n1,x,3,4,5\n", "", 422, None),
    "header only": ("f0,f1,f2,f3,n_items\n", "", 422, None),
    "empty body": ("", "", 422, None),
    "unclosed quote": ('f0,f1,f2,f3,n_items\n1,2,3,4,"5\n', "", 422, None),
    "bad version in the query": (GOOD, "?version=0", 422, None),
    "bad flag in the query": (GOOD, "?return_probabilities=maybe", 422, None),
}


def test_bad_csv_bodies_are_problems_that_change_nothing(
    client, admin_headers, app_env, numbers_model
) -> None:
    conn = app_env["STORAGE_CONNECTION_STRING"]
    before = snapshot(conn, EXPECTED_WRITERS)
    url = f"/predict/{numbers_model}"
    for case, (text, query, status, code) in BAD_CSV.items():
        r = client.post(url + query, headers={**admin_headers, **CSV}, content=text.encode())
        problem = assert_problem(r, status, code)
        assert problem["detail"] and problem["errors"][0]["loc"], case
    r = client.post(
        url, headers={**admin_headers, **CSV}, content=BAD_CSV["text in a number column"][0]
    )
    assert r.json()["errors"][0]["loc"] == ["body", 1, "f1"]
    assert "row 1, column 'f1'" in r.json()["detail"]
    bad = {
        "not UTF-8": (b"f0,f1,f2,f3,n_items\n\xff,2,3,4,5\n", CSV, 422),
        "another charset": (GOOD.encode(), {"Content-Type": "text/csv; charset=latin-1"}, 415),
        "another text type": (GOOD.encode(), {"Content-Type": "text/plain"}, 415),
        "more rows than allowed": (
            ("f0,f1,f2,f3,n_items\n" + "1,2,3,4,5\n" * 10_001).encode(),
            CSV,
            413,
        ),
    }
    for case, (content, headers, status) in bad.items():
        r = client.post(url, headers={**admin_headers, **headers}, content=content)
        assert_problem(r, status), case
    # An option given in the body and the query string: which one? Neither.
    r = client.post(url + "?version=1", headers=admin_headers, json={"version": 1, "records": [{}]})
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["query", "version"]
    assert snapshot(conn, EXPECTED_WRITERS) == before


def test_the_prediction_log_keeps_csv_rows_typed(
    client, admin_headers, services, mixed_model
) -> None:
    """Logged inputs feed drift: numbers stay numbers, booleans booleans, empty is null."""
    text = "size,city,member\n55.5,paris,true\n,lyon,0\n"
    r = client.post(
        f"/predict/{mixed_model}", headers={**admin_headers, **CSV}, content=text.encode()
    )
    assert r.status_code == 200 and r.headers["x-prediction-logged"] == "true", r.text
    log = services.prediction_log
    log.drain(10)
    entry = log.table.get_entity(r.headers["x-prediction-id"], "p")
    assert json.loads(entry["inputs"]) == [
        {"size": 55.5, "city": "paris", "member": True},
        {"size": None, "city": "lyon", "member": False},
    ]


def test_the_openapi_document_shows_the_csv_body_and_the_query_options(client) -> None:
    op = client.get("/openapi.json").json()["paths"]["/predict/{model}"]["post"]
    content = op["requestBody"]["content"]
    assert content["text/csv"]["schema"]["type"] == "string"
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/PredictBody"}
    query = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert query == {"version", "alias", "partition", "return_probabilities"}
    assert "415" in op["responses"]
