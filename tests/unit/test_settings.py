import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.settings import Settings, expand_development_storage


@pytest.fixture()
def local_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "local.settings.json"
    monkeypatch.setenv("LOCAL_SETTINGS_PATH", str(path))
    for name in (
        "MAX_PREDICT_RECORDS",
        "GIT_METADATA",
        "STORAGE_CONNECTION_STRING",
        "AzureWebJobsStorage",
        "APP_ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)
    return path


def write(path: Path, values: dict) -> None:
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))


def test_defaults_apply_without_any_source(local_settings: Path) -> None:
    s = Settings()
    assert s.max_predict_records == 10_000
    assert s.git_metadata == "local"
    assert s.training_schedule == "0 0 2 1 * *"
    assert s.storage_connection_string is None


def test_local_settings_json_overrides_defaults(local_settings: Path) -> None:
    write(local_settings, {"MAX_PREDICT_RECORDS": "7", "GIT_METADATA": "abc"})
    s = Settings()
    assert s.max_predict_records == 7
    assert s.git_metadata == "abc"


def test_environment_wins_over_local_settings_json(
    local_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(local_settings, {"MAX_PREDICT_RECORDS": "7"})
    monkeypatch.setenv("MAX_PREDICT_RECORDS", "9")
    assert Settings().max_predict_records == 9


def test_azure_web_jobs_storage_is_the_fallback_connection(local_settings: Path) -> None:
    write(local_settings, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    conn = Settings().storage_connection_string
    assert conn is not None
    assert "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1" in conn


def test_development_storage_shorthand_expands_only_itself() -> None:
    explicit = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=y"
    assert expand_development_storage(explicit) == explicit
    assert "BlobEndpoint=http://127.0.0.1:10000" in expand_development_storage(
        "UseDevelopmentStorage=true;"
    )


def test_invalid_values_are_refused(local_settings: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_PREDICT_RECORDS", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_broken_local_settings_file_is_a_clear_error(local_settings: Path) -> None:
    local_settings.write_text("{not json")
    with pytest.raises(RuntimeError, match="not valid JSON"):
        Settings()


def test_predefined_users_are_read_as_json_from_the_environment(
    local_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PREDEFINED_USERS",
        json.dumps([{"username": "adf", "roles": ["train-service"], "password_secret": "adf-pw"}]),
    )
    (user,) = Settings().predefined_users
    assert (user.username, user.roles, user.password_secret) == ("adf", ["train-service"], "adf-pw")


def test_upload_limits_default_below_the_hosts_request_body_limit(local_settings: Path) -> None:
    s = Settings()
    assert max(s.max_model_bytes, s.max_dataset_bytes) < 104_857_600
