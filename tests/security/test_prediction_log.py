"""Issue 15 #3: the prediction log is keyed by a server-made id, feedback belongs to the
principal who predicted, and sampling is the server's random choice."""

from __future__ import annotations

import pytest

from tests.security.conftest import assert_problem

pytestmark = pytest.mark.e2e

RECORDS = [{"a": 0.5, "b": -1.0}]


def logged_row(app_env, prediction_id: str) -> dict:
    from azure.data.tables import TableClient

    conn = app_env["STORAGE_CONNECTION_STRING"]
    with TableClient.from_connection_string(conn, "Predictions") as table:
        return dict(table.get_entity(prediction_id, "p"))


def predict(client, headers, name: str, request_id: str | None = None):
    extra = {"X-Request-ID": request_id} if request_id else {}
    r = client.post(f"/predict/{name}", headers={**headers, **extra}, json={"records": RECORDS})
    assert r.status_code == 200, r.text
    return r


def test_a_replayed_request_id_cannot_overwrite_or_claim_a_prediction(
    client, make_user, regressor, app_env, storage_state
) -> None:
    from shared.http import current_services as services

    name, _ = regressor
    victim = make_user(["user"])[3]
    attacker = make_user(["user"])[3]
    r = predict(client, victim, name, request_id="chosen-id-123")
    prediction_id = r.json()["prediction_id"]
    assert r.headers["x-prediction-id"] == prediction_id
    assert prediction_id != "chosen-id-123" and len(prediction_id) == 32
    services().prediction_log.drain()
    original = logged_row(app_env, prediction_id)
    assert original["owner_id"] and original["request_id"] == "chosen-id-123"

    # The attacker replays the victim's X-Request-ID: a new entry, the victim's untouched.
    again = predict(client, attacker, name, request_id="chosen-id-123")
    assert again.json()["prediction_id"] != prediction_id
    services().prediction_log.drain()
    assert logged_row(app_env, prediction_id) == original

    # Feedback on someone else's prediction (or by request id, or a bad id) is 404.
    before = storage_state()
    for target in (prediction_id, "chosen-id-123", "..%2f..%2fx", "x" * 200):
        r = client.post(f"/predictions/{target}/feedback", headers=attacker, json={"actual": 1})
        assert_problem(r, (404, 422))
    assert storage_state() == before

    # The owner's feedback lands.
    r = client.post(f"/predictions/{prediction_id}/feedback", headers=victim, json={"actual": 1})
    assert r.status_code == 202, r.text
    assert r.json()["prediction_id"] == prediction_id


def test_sampling_is_a_server_side_choice() -> None:
    from shared.prediction.log import sampled

    outcomes = {sampled(0.5) for _ in range(200)}
    assert outcomes == {True, False}
    assert not any(sampled(0.0) for _ in range(50)) and all(sampled(1.0) for _ in range(50))
