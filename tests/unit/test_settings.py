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


# Every setting read under its own name (the field name in capitals): these had an
# AliasChoices repeating that name; the names must keep working without it.
ENV_NAMES = [
    ("GIT_METADATA", "git_metadata", "test-value", "test-value"),
    ("LOG_LEVEL", "log_level", "DEBUG", "DEBUG"),
    ("AZURE_CLIENT_ID", "azure_client_id", "client-id", "client-id"),
    ("KEY_VAULT_URL", "key_vault_url", "https://kv.example", "https://kv.example"),
    ("JWT_ISSUER", "jwt_issuer", "issuer", "issuer"),
    ("JWT_AUDIENCE", "jwt_audience", "audience", "audience"),
    ("ACCESS_TOKEN_TTL_SECONDS", "access_token_ttl_seconds", "3599", 3599),
    ("AUTH_CACHE_TTL_SECONDS", "auth_cache_ttl_seconds", "5.0", 5.0),
    ("ALLOW_SELF_REGISTRATION", "allow_self_registration", "true", True),
    ("PASSWORD_MIN_LENGTH", "password_min_length", "11", 11),
    ("LOGIN_MAX_FAILURES", "login_max_failures", "4", 4),
    ("LOGIN_FAILURE_WINDOW_SECONDS", "login_failure_window_seconds", "899", 899),
    ("LOGIN_LOCKOUT_SECONDS", "login_lockout_seconds", "899", 899),
    ("BOOTSTRAP_ADMIN_USERNAME", "bootstrap_admin_username", "root", "root"),
    ("MAX_REQUEST_BYTES", "max_request_bytes", "999999", 999999),
    ("MAX_MODEL_BYTES", "max_model_bytes", "209715199", 209715199),
    ("MAX_DATASET_BYTES", "max_dataset_bytes", "209715199", 209715199),
    ("MAX_PREDICT_RECORDS", "max_predict_records", "9999", 9999),
    ("MAX_PREDICT_BODY_BYTES", "max_predict_body_bytes", "16777215", 16777215),
    ("PREDICTION_LOG_SAMPLE_RATE", "prediction_log_sample_rate", "0.05", 0.05),
    ("HEALTH_TIMEOUT_SECONDS", "health_timeout_seconds", "1.0", 1.0),
    ("PAGE_SIZE_MAX", "page_size_max", "199", 199),
    ("ALLOW_PICKLE_MODELS", "allow_pickle_models", "true", True),
    ("MODEL_CACHE_BYTES", "model_cache_bytes", "1073741823", 1073741823),
    ("ALIAS_CACHE_TTL_SECONDS", "alias_cache_ttl_seconds", "2.5", 2.5),
    ("ONNX_INTRA_OP_THREADS", "onnx_intra_op_threads", "2", 2),
    ("QUEUE_MAX_DEQUEUE_COUNT", "queue_max_dequeue_count", "4", 4),
    ("TRAINING_SCHEDULE", "training_schedule", "0 0 3 1 * *", "0 0 3 1 * *"),
]


@pytest.mark.parametrize(("env", "field", "raw", "expected"), ENV_NAMES)
def test_each_setting_reads_its_environment_name(
    local_settings: Path, monkeypatch: pytest.MonkeyPatch, env, field, raw, expected
) -> None:
    assert getattr(Settings(), field) != expected  # the default differs: the test can fail
    monkeypatch.setenv(env, raw)
    assert getattr(Settings(), field) == expected


@pytest.mark.parametrize(("env", "field", "raw", "expected"), ENV_NAMES[::7])
def test_local_settings_json_uses_the_same_names(
    local_settings: Path, monkeypatch: pytest.MonkeyPatch, env, field, raw, expected
) -> None:
    monkeypatch.delenv(env, raising=False)  # the environment would win
    write(local_settings, {env: raw})
    assert getattr(Settings(), field) == expected


def test_env_names_are_the_names_read() -> None:
    for env, field, _, _ in ENV_NAMES:
        assert Settings.env_names(field) == [env]
    assert Settings.env_names("storage_connection_string") == [
        "STORAGE_CONNECTION_STRING",
        "AzureWebJobsStorage",
    ]


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
