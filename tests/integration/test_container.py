"""The service container against a real Azurite: lazy, built once, and closed cleanly."""

from __future__ import annotations

import threading

import pytest
from azure.data.tables import TableClient

from shared.container import Services
from shared.prediction.log import new_prediction_id
from shared.settings import Settings

BACKGROUND = ("prediction-log", "ab-stats", "shadow")


def background_threads() -> set[threading.Thread]:
    # Thread objects, not names: other containers of the session run threads of those names.
    return {t for t in threading.enumerate() if t.name.startswith(BACKGROUND)}


@pytest.fixture()
def services(azurite: object) -> Services:
    settings = Settings(
        STORAGE_CONNECTION_STRING=azurite.connection_string,  # type: ignore[attr-defined]
        PREDICTION_LOG_SAMPLE_RATE=1,
        LOG_LEVEL="WARNING",
    )
    built = Services(settings)
    yield built
    built.close()


def test_nothing_is_built_until_asked(services: Services) -> None:
    names = ("storage", "secret_store", "users", "authenticator", "predictor", "trainer")
    assert not any(services.is_built(n) for n in names)
    registry = services.model_registry
    assert services.model_registry is registry  # built once, then kept
    assert services.is_built("storage") and services.is_built("model_registry")
    assert not services.is_built("predictor")


def test_concurrent_first_use_builds_one_instance(services: Services) -> None:
    seen: list[object] = []
    threads = [
        threading.Thread(target=lambda: seen.append(services.dataset_store)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 1


def test_close_writes_what_is_pending_and_stops_background_threads(services: Services) -> None:
    before = background_threads()
    prediction_id = new_prediction_id()
    log = services.prediction_log
    assert log.offer(prediction_id, "req-1", "owner", "m", 1, None, None, 1.0, [{"a": 1}], [0])
    services.traffic_router.count("m", "default", 1, "primary", 1, 1.0)
    assert background_threads() - before  # writers and the counter flusher run
    services.close()
    assert not {t for t in background_threads() - before if t.is_alive()}
    # What was queued when close() was called is in Table Storage, not lost.
    conn = services.settings.storage_connection_string
    with TableClient.from_connection_string(conn, "Predictions") as table:
        assert table.get_entity(prediction_id, "p")["model"] == "m"
    assert not services.is_built("prediction_log")
