"""The process-wide services, built once on first use from the settings.

Handlers ask for a service here; the services themselves take their clients as
constructor arguments (testable without the Functions runtime). ``reset()`` drops
everything, for tests that change settings.
"""

from __future__ import annotations

import secrets as _secrets
import threading
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from shared.observability import configure_logging, get_logger
from shared.settings import get_settings

if TYPE_CHECKING:
    from shared.audit import AuditLog
    from shared.datasets import DatasetStore
    from shared.idempotency import IdempotencyStore
    from shared.identity.accounts import Accounts
    from shared.identity.authenticator import Authenticator
    from shared.identity.roles import RoleStore
    from shared.identity.tokens import TokenService
    from shared.identity.users import UserStore
    from shared.ingestion import Ingestor
    from shared.monitoring.drift import DriftMonitor
    from shared.monitoring.reports import ReportBuilder
    from shared.prediction.engine import Predictor
    from shared.prediction.entities import EntityIndex, EntityPredictions
    from shared.prediction.log import PredictionLog
    from shared.prediction.quantize import Quantizer
    from shared.prediction.service import PredictionService
    from shared.prediction.traffic import TrafficRouter
    from shared.prediction.transform import Transformer
    from shared.ratelimit import RateLimiter
    from shared.registry.loader import ModelLoader
    from shared.registry.signing import ModelSigner
    from shared.registry.store import ModelRegistry
    from shared.registry.uploads import ModelUploads
    from shared.secrets import SecretStore
    from shared.storage import Storage
    from shared.training.jobs import JobStore
    from shared.training.orchestrator import Trainer
    from shared.training.specs import SpecStore

T = TypeVar("T")
_lock = threading.RLock()
_built: dict[str, Any] = {}
log = get_logger("services")


def singleton(build: Callable[[], T]) -> Callable[[], T]:
    @wraps(build)
    def get() -> T:
        value = _built.get(build.__name__)
        if value is not None:
            return value
        with _lock:
            if build.__name__ not in _built:
                _built[build.__name__] = build()
            return _built[build.__name__]

    return get


def reset() -> None:
    """Forget every built service and the cached settings (tests)."""
    with _lock:
        storage = _built.get("storage")
        _built.clear()
        get_settings.cache_clear()
    if storage is not None:
        storage.close()


@singleton
def storage() -> Storage:
    from shared.storage import Storage

    settings = get_settings()
    configure_logging(settings.log_level)
    return Storage.from_settings(settings)


@singleton
def secret_store() -> SecretStore:
    from shared.secrets import build_secret_store

    return build_secret_store(get_settings())


@singleton
def token_service() -> TokenService:
    from shared.identity.bootstrap import ConfigurationError
    from shared.identity.tokens import MIN_KEY_BYTES, TokenService

    settings = get_settings()
    key = secret_store().get(settings.jwt_signing_key_secret)
    if not key:
        if settings.is_azure:
            raise ConfigurationError("The token signing key is missing from Key Vault.")
        log.warning("no JWT_SIGNING_KEY set: using a random key; tokens die with this process")
        key = _secrets.token_urlsafe(48)
    if len(key.encode()) < MIN_KEY_BYTES:
        raise ConfigurationError(f"The token signing key must be >= {MIN_KEY_BYTES * 8} bits.")
    return TokenService(
        key.encode(), settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )


@singleton
def user_store() -> UserStore:
    from shared.identity.bootstrap import bootstrap_admin
    from shared.identity.users import TABLE, UserStore

    users = UserStore(storage().table(TABLE))
    bootstrap_admin(get_settings(), secret_store(), users)
    return users


@singleton
def role_store() -> RoleStore:
    from shared.identity.roles import TABLE, RoleStore

    return RoleStore(storage().table(TABLE), get_settings().auth_cache_ttl_seconds)


@singleton
def authenticator() -> Authenticator:
    from shared.identity.api_keys import TABLE as KEYS
    from shared.identity.api_keys import ApiKeyStore
    from shared.identity.authenticator import Authenticator
    from shared.identity.revocations import TABLE as REVOKED
    from shared.identity.revocations import RevocationList

    ttl = get_settings().auth_cache_ttl_seconds
    return Authenticator(
        tokens=token_service(),
        users=user_store(),
        roles=role_store(),
        api_keys=ApiKeyStore(storage().table(KEYS)),
        revocations=RevocationList(storage().table(REVOKED), ttl),
        cache_seconds=ttl,
    )


@singleton
def accounts() -> Accounts:
    from shared.identity.accounts import Accounts
    from shared.identity.throttle import TABLE, LoginThrottle

    settings = get_settings()
    auth = authenticator()
    return Accounts(
        users=auth.users,
        roles=auth.roles,
        api_keys=auth.api_keys,
        tokens=auth.tokens,
        revocations=auth.revocations,
        throttle=LoginThrottle(
            storage().table(TABLE),
            settings.login_max_failures,
            settings.login_failure_window_seconds,
            settings.login_lockout_seconds,
        ),
        authenticator=auth,
        password_min_length=settings.password_min_length,
        allow_self_registration=settings.allow_self_registration,
    )


@singleton
def audit_log() -> AuditLog:
    from shared.audit import TABLE, AuditLog

    return AuditLog(storage().table(TABLE))


@singleton
def idempotency_store() -> IdempotencyStore:
    from shared.idempotency import TABLE, IdempotencyStore

    return IdempotencyStore(storage().table(TABLE))


@singleton
def model_registry() -> ModelRegistry:
    from shared.registry.store import ALIASES_TABLE, CONTAINER, MODELS_TABLE, ModelRegistry

    s = storage()
    return ModelRegistry(
        s.table(MODELS_TABLE), s.table(ALIASES_TABLE), s.container(CONTAINER), model_signer()
    )


def model_signer() -> ModelSigner:
    from shared.identity.bootstrap import ConfigurationError
    from shared.registry.signing import ModelSigner

    settings = get_settings()
    store = secret_store()
    current = store.get(settings.model_signing_key_secret)
    required = settings.require_signed_models
    if required is None:
        required = settings.is_azure
    if settings.is_azure and not current:
        raise ConfigurationError("The model signing key is missing from Key Vault.")
    if not current:
        log.warning("no MODEL_SIGNING_KEY set: new model versions are not signed")
    try:
        return ModelSigner.from_secrets(
            current, store.get(settings.model_signing_previous_keys_secret), required
        )
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


@singleton
def model_uploads() -> ModelUploads:
    from shared.registry.uploads import ModelUploads

    return ModelUploads(model_registry(), idempotency_store(), get_settings().allow_pickle_models)


@singleton
def model_loader() -> ModelLoader:
    from shared.registry.loader import ModelLoader

    settings = get_settings()
    return ModelLoader(
        model_registry(),
        max_cache_bytes=settings.model_cache_bytes,
        alias_ttl_seconds=settings.alias_cache_ttl_seconds,
        intra_op_threads=settings.onnx_intra_op_threads,
    )


@singleton
def dataset_store() -> DatasetStore:
    from shared.datasets import DatasetStore

    return DatasetStore.from_storage(storage())


@singleton
def spec_store() -> SpecStore:
    from shared.training.specs import TABLE, SpecStore

    return SpecStore(storage().table(TABLE))


@singleton
def job_store() -> JobStore:
    from shared.training.jobs import JOBS_TABLE, UNITS_TABLE, JobStore

    return JobStore(storage().table(JOBS_TABLE), storage().table(UNITS_TABLE))


@singleton
def trainer() -> Trainer:
    from shared.training.orchestrator import STAGING_CONTAINER, Trainer

    return Trainer(
        specs=spec_store(),
        jobs=job_store(),
        datasets=dataset_store(),
        registry=model_registry(),
        idempotency=idempotency_store(),
        queue=storage().queue("training"),
        staging=storage().container(STAGING_CONTAINER),
        max_dequeue_count=get_settings().queue_max_dequeue_count,
    )


@singleton
def predictor() -> Predictor:
    from shared.prediction.engine import Predictor

    return Predictor(model_loader(), get_settings().max_predict_records)


@singleton
def traffic_router() -> TrafficRouter:
    from shared.prediction.traffic import STATS_TABLE, TRAFFIC_TABLE, TrafficRouter

    return TrafficRouter(
        storage().table(TRAFFIC_TABLE),
        storage().table(STATS_TABLE),
        get_settings().alias_cache_ttl_seconds,
    )


@singleton
def prediction_log() -> PredictionLog:
    from shared.prediction.log import TABLE, PredictionLog

    return PredictionLog(storage().table(TABLE), get_settings().prediction_log_sample_rate)


@singleton
def prediction_service() -> PredictionService:
    from shared.prediction.service import PredictionService

    return PredictionService(predictor(), traffic_router(), prediction_log())


@singleton
def transformer() -> Transformer:
    from shared.prediction.transform import Transformer

    return Transformer(model_loader(), get_settings().max_predict_records)


@singleton
def quantizer() -> Quantizer:
    from shared.prediction.quantize import Quantizer

    return Quantizer(model_registry(), model_loader())


@singleton
def entity_index() -> EntityIndex:
    from shared.prediction.entities import CONTAINER, EntityIndex

    return EntityIndex(
        storage().container(CONTAINER), dataset_store, get_settings().max_entity_index_rows
    )


@singleton
def entity_predictions() -> EntityPredictions:
    from shared.prediction.entities import EntityPredictions

    return EntityPredictions(entity_index(), prediction_service())


@singleton
def drift_monitor() -> DriftMonitor:
    from shared.monitoring.drift import DriftMonitor

    # Factories, not instances: a records request never builds the dataset store.
    return DriftMonitor(
        model_registry(), model_loader(), datasets=dataset_store, prediction_log=prediction_log
    )


@singleton
def report_builder() -> ReportBuilder:
    from shared.monitoring.reports import CONTAINER, SCORED_CONTAINER, ReportBuilder

    s = storage()
    return ReportBuilder(
        s.container(CONTAINER), s.container(SCORED_CONTAINER), model_registry(), drift_monitor
    )


@singleton
def rate_limiter() -> RateLimiter:
    from shared.ratelimit import GROUPS, TABLE, Policy, RateLimiter

    settings = get_settings()
    policies = {}
    for group in GROUPS:
        policy = Policy.parse(group, getattr(settings, f"rate_limit_{group}"))
        if policy is not None:
            policies[group] = policy
    return RateLimiter(storage().table(TABLE), policies)


@singleton
def ingestor() -> Ingestor:
    from shared.ingestion import Ingestor

    return Ingestor(dataset_store(), idempotency_store())
