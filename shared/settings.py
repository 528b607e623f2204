"""Every setting of the platform, in one place.

Precedence (highest first): the process environment (Azure App Settings in Azure),
then the ``Values`` of ``local.settings.json`` (local runs), then the defaults here.
Secrets are not settings: settings only name them (see ``shared.secrets``).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent

AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def expand_development_storage(conn: str) -> str:
    """Turn the ``UseDevelopmentStorage=true`` shorthand into Azurite's explicit endpoints.

    Not every Azure SDK (azure-data-tables in particular) understands the shorthand.
    """
    if conn.replace(" ", "").lower().rstrip(";") != "usedevelopmentstorage=true":
        return conn
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_KEY};"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    )


def local_settings_path() -> Path:
    return Path(os.environ.get("LOCAL_SETTINGS_PATH", PROJECT_ROOT / "local.settings.json"))


def read_local_settings_values(path: Path | None = None) -> dict[str, str]:
    """The ``Values`` of local.settings.json, or nothing when the file is absent (Azure)."""
    path = path or local_settings_path()
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"{path} is not valid JSON: {exc}") from exc
    return {str(k): str(v) for k, v in values.items() if v is not None}


class _LocalSettingsJson(EnvSettingsSource):
    """Reads the ``Values`` of local.settings.json with the same alias rules as env vars."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self._path = path
        super().__init__(settings_cls)

    def _load_env_vars(self) -> dict[str, str | None]:
        return {k.lower(): v for k, v in read_local_settings_values(self._path).items()}


class PredefinedUser(BaseModel):
    """A user the platform creates on first start; the password lives in a secret."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=64)
    roles: list[str] = Field(min_length=1, max_length=20)
    password_secret: str = Field(pattern=r"^[A-Za-z0-9-]{1,127}$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    @classmethod
    def env_names(cls, field: str) -> list[str]:
        """The environment / local.settings.json names a field is read from: its aliases,
        else its own name in capitals (names are matched case-insensitively)."""
        alias = cls.model_fields[field].validation_alias
        if alias is None:
            return [field.upper()]
        return [str(a) for a in getattr(alias, "choices", [alias])]

    # --- runtime identity -------------------------------------------------------------
    environment: Literal["local", "azure"] = Field(
        default="local",
        validation_alias=AliasChoices("APP_ENVIRONMENT"),
        description="'azure' enforces production rules (Key Vault secrets, no demo users).",
    )
    git_metadata: str = Field(
        default="local",
        description="Build identifier reported by /heartbeat.",
    )
    log_level: str = "INFO"

    # --- storage ------------------------------------------------------------------------
    storage_connection_string: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STORAGE_CONNECTION_STRING", "AzureWebJobsStorage"),
        description="Connection string (Azurite locally). Wins over STORAGE_ACCOUNT_NAME.",
    )
    storage_account_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STORAGE_ACCOUNT_NAME", "AzureWebJobsStorage__accountName"),
        description="Storage account reached with a managed identity in Azure.",
    )
    azure_client_id: str | None = Field(
        default=None,
        description="Client id of a user-assigned managed identity, if one is used.",
    )
    key_vault_url: str | None = Field(
        default=None,
        description="When set, secrets come from this Key Vault; else from the environment.",
    )

    storage_http_deadline_seconds: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Budget of one storage operation (connect, read, retries) in an HTTP"
        " function: a storage that does not answer in time gives a 503.",
    )
    storage_worker_deadline_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="The same budget in queue and timer functions.",
    )
    storage_retry_total: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of one storage operation (Blob, Queue and Table alike).",
    )
    storage_retry_backoff_seconds: float = Field(
        default=0.5,
        ge=0,
        le=30,
        description="Fixed pause between those retries (Blob, Queue and Table alike).",
    )
    storage_pool_size: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="HTTP connections kept per storage service (size it to the concurrency).",
    )

    # --- identity -------------------------------------------------------------------------
    jwt_signing_key_secret: str = Field(
        default="jwt-signing-key",
        validation_alias=AliasChoices("JWT_SIGNING_KEY_SECRET_NAME"),
        description="Secret name of the token signing key (env var JWT_SIGNING_KEY locally).",
    )
    jwt_previous_signing_key_secret: str = Field(
        default="jwt-signing-key-previous",
        validation_alias=AliasChoices("JWT_PREVIOUS_SIGNING_KEY_SECRET_NAME"),
        description="Secret name of the previous signing key, still accepted while a rotation"
        " is in progress (env JWT_SIGNING_KEY_PREVIOUS locally); absent = none.",
    )
    jwt_issuer: str = "ml-platform"
    jwt_audience: str = "ml-platform-api"
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    auth_cache_ttl_seconds: float = Field(
        default=10.0,
        ge=0,
        le=25,
        description="How long an instance trusts its cached user/revocation state.",
    )
    allow_self_registration: bool = False
    password_min_length: int = Field(default=12, ge=8, le=128)
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    bootstrap_admin_username: str | None = None
    model_signing_key_secret: str = Field(
        default="model-signing-key",
        validation_alias=AliasChoices("MODEL_SIGNING_KEY_SECRET_NAME"),
        description="Secret name of the model signing key (MODEL_SIGNING_KEY locally).",
    )
    model_signing_previous_keys_secret: str = Field(
        default="model-signing-keys-previous",
        validation_alias=AliasChoices("MODEL_SIGNING_KEYS_PREVIOUS_SECRET_NAME"),
        description="Secret name of the comma-separated keys that signed older versions.",
    )
    require_signed_models: bool | None = Field(
        default=None,
        description="Refuse to load unsigned versions; default: on in Azure, off locally.",
    )
    bootstrap_admin_password_secret: str = Field(
        default="bootstrap-admin-password",
        validation_alias=AliasChoices("BOOTSTRAP_ADMIN_PASSWORD_SECRET_NAME"),
        description="Secret name of the bootstrap admin password (BOOTSTRAP_ADMIN_PASSWORD).",
    )
    predefined_users: list[PredefinedUser] = Field(
        default_factory=list,
        description="JSON list of {username, roles, password_secret}: created on first start"
        " when absent, never overwritten.",
    )

    # --- limits ----------------------------------------------------------------------------
    max_request_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="Largest JSON body accepted by non-upload routes.",
    )
    # Uploads stay under the Functions host's request body limit
    # (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT, 100 MiB by default) with room for the multipart
    # envelope; larger data goes through Blob storage (README "Large data").
    max_model_bytes: int = Field(default=90 * 1024 * 1024, ge=1024)
    max_dataset_bytes: int = Field(default=90 * 1024 * 1024, ge=1024)
    dataset_max_columns: int = Field(default=2000, ge=1)
    dataset_max_column_name_chars: int = Field(default=256, ge=1)
    dataset_max_row_bytes: int = Field(
        default=1024 * 1024,
        ge=64,
        description="Largest CSV line / average Parquet row (bounds any one cell too).",
    )
    dataset_max_decompressed_bytes: int = Field(
        default=400 * 1024 * 1024,
        ge=1024,
        description="Largest decoded size of an uploaded dataset (Parquet decompresses).",
    )
    dataset_max_rows: int = Field(default=50_000_000, ge=1)
    training_max_estimators: int = Field(
        default=1000,
        ge=1,
        description="Largest n_estimators a training spec may ask for.",
    )
    rate_limit_predict: str = Field(
        default="6000/60",
        description="N/S: requests per S seconds per API key or user ('off': none).",
    )
    rate_limit_drift: str = "10/60"
    rate_limit_evaluate: str = "60/60"
    rate_limit_upload: str = "120/60"
    rate_limit_train: str = "60/60"
    max_ingest_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest batch POST /datasets/{name}/records takes.",
    )
    max_download_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1024,
        description="Largest scored output served in one response (GET .../output).",
    )
    max_predict_records: int = Field(default=10_000, ge=1)
    max_entity_index_rows: int = Field(
        default=5_000_000,
        ge=1,
        description="Largest feature dataset an entity index is built from.",
    )
    max_predict_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /predict/{model} and the V2 infer routes.",
    )
    prediction_log_sample_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Share of online predictions logged (inputs, outputs, latency).",
    )
    health_timeout_seconds: float = Field(default=2.0, gt=0, le=10)
    page_size_max: int = Field(default=200, ge=1)

    # --- registry -------------------------------------------------------------------------
    allow_pickle_models: bool = Field(
        default=False,
        description="Accept pickle/joblib uploads (admins only). They run code when loaded.",
    )
    model_cache_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=1024,
        description="Bound of the per-process model cache (serialized size).",
    )
    alias_cache_ttl_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long an instance keeps an alias resolution (promotion delay).",
    )
    onnx_intra_op_threads: int = Field(default=1, ge=1, le=64)

    # --- training -------------------------------------------------------------------------
    queue_max_dequeue_count: int = Field(
        default=5,
        ge=1,
        description="Must equal host.json extensions.queues.maxDequeueCount.",
    )
    job_stall_seconds: float = Field(
        default=1800,
        ge=1,
        description="A job with no progress this long is re-driven by the watchdog; longer"
        " than the slowest unit (a running unit this old is taken as dead and run again).",
    )
    job_max_redrives: int = Field(
        default=3,
        ge=0,
        description="Re-drives without progress before the watchdog fails the job.",
    )
    training_unit_rows: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        description="Row budget of one training unit: small partitions are trained"
        " together, up to this many rows per queue message (a larger partition alone).",
    )
    training_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads one fit may use (n_jobs of estimators that take it, unless"
        " the spec sets it; OpenMP/BLAS limits). Size it to the instance's cores.",
    )
    training_schedule: str = Field(
        default="0 0 2 1 * *",
        description="NCRONTAB of the monthly training timer.",
    )

    @field_validator("storage_connection_string")
    @classmethod
    def _expand(cls, value: str | None) -> str | None:
        return expand_development_storage(value) if value else None

    @property
    def is_azure(self) -> bool:
        return self.environment == "azure"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        local = _LocalSettingsJson(settings_cls, local_settings_path())
        return (init_settings, env_settings, local)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (Functions restarts the worker on a change)."""
    return Settings()
