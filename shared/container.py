"""The one place where the platform's services are built and wired.

``Services(settings)`` builds nothing up front: each attribute below is built on first
use (then kept for the life of the container), so a cold start that only serves
``/heartbeat`` or ``/auth/jwt/login`` never pays for the ML services. Every storage name
comes from :mod:`shared.resources` and is bound here; services receive ready clients.

The container is built once by ``function_app`` and handed to the HTTP edge and the
queue/timer handlers (``shared.http.endpoint.use_services``); tests build their own from
a test ``Settings``. ``bootstrap()`` runs the one-time start-up work, ``close()`` stops
the background threads and closes the clients.
"""

from __future__ import annotations

import secrets as _secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from shared.observability import configure_logging, get_logger
from shared.resources import Containers, Queues, Tables
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.audit import AuditLog
    from shared.dashboard.plots import PlotCatalog
    from shared.datasets.store import DatasetStore
    from shared.idempotency import IdempotencyStore
    from shared.identity.accounts import Accounts
    from shared.identity.authenticator import Authenticator
    from shared.identity.roles import RoleStore
    from shared.identity.tokens import TokenService
    from shared.identity.users import UserStore
    from shared.ingestion import Ingestor
    from shared.monitoring.drift import DriftMonitor
    from shared.monitoring.evaluate import Evaluator
    from shared.monitoring.reports import ReportBuilder
    from shared.prediction.batch.service import BatchScorer
    from shared.prediction.engine import Predictor
    from shared.prediction.entities import EntityIndex, EntityPredictions
    from shared.prediction.log import PredictionLog
    from shared.prediction.oip import InferenceService
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
log = get_logger("container")


class service(Generic[T]):
    """A lazily built, then kept, attribute of :class:`Services` (built once under a lock)."""

    def __init__(self, build: Callable[[Services], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, obj: None, owner: type) -> service[T]: ...
    @overload
    def __get__(self, obj: Services, owner: type) -> T: ...
    def __get__(self, obj: Services | None, owner: type) -> service[T] | T:
        if obj is None:
            return self
        built = obj._built
        if self.name in built:
            return built[self.name]
        with obj._lock:
            if self.name not in built:
                built[self.name] = self.build(obj)
            return built[self.name]


class Services:
    """Every service of the platform, built from one ``Settings`` on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()

    # --- life cycle --------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """One-time start-up: logging now; the bootstrap admin once identity is first used.

        Seeding the admin needs storage and the secret store, so it is not done at import
        (the Functions worker indexes the app there, and heartbeat must not touch storage):
        :attr:`users` seeds it when it is first built, exactly once per container.
        """
        configure_logging(self.settings.log_level)

    def is_built(self, name: str) -> bool:
        return name in self._built

    def close(self) -> None:
        """Stop background threads (counters, log writers, shadow pool) and close clients."""
        with self._lock:
            built, self._built = self._built, {}
        for name in ("prediction_service", "traffic_router", "prediction_log"):
            svc = built.get(name)
            if svc is not None:
                try:
                    svc.close()
                except Exception:
                    log.warning("could not close %s", name, exc_info=True)
        storage = built.get("storage")
        if storage is not None:
            storage.close()

    # --- storage and secrets ---------------------------------------------------------------
    @service
    def storage(self) -> Storage:
        from shared.storage import Storage

        return Storage.from_settings(self.settings)

    @service
    def secret_store(self) -> SecretStore:
        from shared.secrets import build_secret_store

        return build_secret_store(self.settings)

    # --- identity ----------------------------------------------------------------------------
    @service
    def token_service(self) -> TokenService:
        from shared.identity.bootstrap import ConfigurationError
        from shared.identity.tokens import MIN_KEY_BYTES, TokenService

        settings = self.settings
        key = self.secret_store.get(settings.jwt_signing_key_secret)
        if not key:
            if settings.is_azure:
                raise ConfigurationError("The token signing key is missing from Key Vault.")
            log.warning("no JWT_SIGNING_KEY set: using a random key; tokens die with this process")
            key = _secrets.token_urlsafe(48)
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ConfigurationError(f"The token signing key must be >= {MIN_KEY_BYTES * 8} bits.")
        previous = self.secret_store.get(settings.jwt_previous_signing_key_secret)
        if previous and len(previous.encode()) < MIN_KEY_BYTES:
            raise ConfigurationError("The previous token signing key is too short.")
        return TokenService(
            key.encode(),
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl_seconds,
            previous_keys=(previous.encode(),) if previous else (),
        )

    @service
    def users(self) -> UserStore:
        """The user store; building it seeds the bootstrap admin (once per container)."""
        from shared.identity.bootstrap import bootstrap_admin
        from shared.identity.predefined import ensure_predefined_users
        from shared.identity.users import UserStore

        users = UserStore(self.storage.table(Tables.USERS))
        bootstrap_admin(self.settings, self.secret_store, users)
        ensure_predefined_users(self.settings, self.secret_store, users)
        return users

    @service
    def roles(self) -> RoleStore:
        from shared.identity.roles import RoleStore

        return RoleStore(self.storage.table(Tables.ROLES), self.settings.auth_cache_ttl_seconds)

    @service
    def authenticator(self) -> Authenticator:
        from shared.identity.api_keys import ApiKeyStore
        from shared.identity.authenticator import Authenticator
        from shared.identity.revocations import RevocationList

        ttl = self.settings.auth_cache_ttl_seconds
        return Authenticator(
            tokens=self.token_service,
            users=self.users,
            roles=self.roles,
            api_keys=ApiKeyStore(self.storage.table(Tables.API_KEYS)),
            revocations=RevocationList(self.storage.table(Tables.REVOKED_TOKENS), ttl),
            cache_seconds=ttl,
        )

    @service
    def accounts(self) -> Accounts:
        from shared.identity.accounts import Accounts
        from shared.identity.throttle import LoginThrottle

        settings = self.settings
        auth = self.authenticator
        return Accounts(
            users=auth.users,
            roles=auth.roles,
            api_keys=auth.api_keys,
            tokens=auth.tokens,
            revocations=auth.revocations,
            throttle=LoginThrottle(
                self.storage.table(Tables.LOGIN_ATTEMPTS),
                settings.login_max_failures,
                settings.login_failure_window_seconds,
                settings.login_lockout_seconds,
            ),
            authenticator=auth,
            password_min_length=settings.password_min_length,
            allow_self_registration=settings.allow_self_registration,
        )

    @service
    def audit_log(self) -> AuditLog:
        from shared.audit import AuditLog

        return AuditLog(self.storage.table(Tables.AUDIT))

    @service
    def idempotency(self) -> IdempotencyStore:
        from shared.idempotency import IdempotencyStore

        return IdempotencyStore(self.storage.table(Tables.IDEMPOTENCY))

    @service
    def rate_limiter(self) -> RateLimiter:
        from shared.ratelimit import GROUPS, Policy, RateLimiter

        policies = {}
        for group in GROUPS:
            policy = Policy.parse(group, getattr(self.settings, f"rate_limit_{group}"))
            if policy is not None:
                policies[group] = policy
        return RateLimiter(self.storage.table(Tables.RATE_LIMITS), policies)

    # --- registry and datasets ---------------------------------------------------------------
    @service
    def model_registry(self) -> ModelRegistry:
        from shared.registry.store import ModelRegistry

        s = self.storage
        return ModelRegistry(
            s.table(Tables.MODELS),
            s.table(Tables.ALIASES),
            s.container(Containers.MODELS),
            self.model_signer,
        )

    @service
    def model_signer(self) -> ModelSigner:
        from shared.identity.bootstrap import ConfigurationError
        from shared.registry.signing import ModelSigner

        settings = self.settings
        store = self.secret_store
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

    @service
    def model_uploads(self) -> ModelUploads:
        from shared.registry.uploads import ModelUploads

        return ModelUploads(
            self.model_registry, self.idempotency, self.settings.allow_pickle_models
        )

    @service
    def model_loader(self) -> ModelLoader:
        from shared.registry.loader import ModelLoader

        settings = self.settings
        return ModelLoader(
            self.model_registry,
            max_cache_bytes=settings.model_cache_bytes,
            alias_ttl_seconds=settings.alias_cache_ttl_seconds,
            intra_op_threads=settings.onnx_intra_op_threads,
        )

    @service
    def dataset_store(self) -> DatasetStore:
        from shared.datasets.limits import DatasetLimits
        from shared.datasets.store import DatasetStore

        s = self.storage
        return DatasetStore(
            s.container(Containers.DATASETS),
            s.table(Tables.DATASETS),
            limits=DatasetLimits.from_settings(self.settings),
        )

    # --- training ----------------------------------------------------------------------------
    @service
    def spec_store(self) -> SpecStore:
        from shared.training.specs import SpecStore

        return SpecStore(self.storage.table(Tables.TRAINING_SPECS))

    @service
    def job_store(self) -> JobStore:
        from shared.training.jobs import JobStore

        return JobStore(self.storage.table(Tables.JOBS), self.storage.table(Tables.JOB_UNITS))

    @service
    def trainer(self) -> Trainer:
        from shared.training.orchestrator import Trainer

        return Trainer(
            specs=self.spec_store,
            jobs=self.job_store,
            datasets=self.dataset_store,
            registry=self.model_registry,
            idempotency=self.idempotency,
            queue=self.storage.queue(Queues.TRAINING),
            staging=self.storage.container(Containers.TRAINING_STAGING),
            max_dequeue_count=self.settings.queue_max_dequeue_count,
            unit_rows=self.settings.training_unit_rows,
            threads=self.settings.training_threads,
        )

    # --- prediction --------------------------------------------------------------------------
    @service
    def predictor(self) -> Predictor:
        from shared.prediction.engine import Predictor

        return Predictor(self.model_loader, self.settings.max_predict_records)

    @service
    def traffic_router(self) -> TrafficRouter:
        from shared.prediction.traffic import TrafficRouter

        return TrafficRouter(
            self.storage.table(Tables.TRAFFIC),
            self.storage.table(Tables.AB_STATS),
            self.settings.alias_cache_ttl_seconds,
        )

    @service
    def prediction_log(self) -> PredictionLog:
        from shared.prediction.log import PredictionLog

        return PredictionLog(
            self.storage.table(Tables.PREDICTIONS), self.settings.prediction_log_sample_rate
        )

    @service
    def prediction_service(self) -> PredictionService:
        from shared.prediction.service import PredictionService

        return PredictionService(self.predictor, self.traffic_router, self.prediction_log)

    @service
    def inference(self) -> InferenceService:
        from shared.prediction.oip import InferenceService

        return InferenceService(self.predictor, self.model_registry)

    @service
    def transformer(self) -> Transformer:
        from shared.prediction.transform import Transformer

        return Transformer(self.model_loader, self.settings.max_predict_records)

    @service
    def quantizer(self) -> Quantizer:
        from shared.prediction.quantize import Quantizer

        return Quantizer(self.model_registry, self.model_loader)

    @service
    def entity_index(self) -> EntityIndex:
        from shared.prediction.entities import EntityIndex

        return EntityIndex(
            self.storage.container(Containers.ENTITIES),
            lambda: self.dataset_store,
            self.settings.max_entity_index_rows,
        )

    @service
    def entity_predictions(self) -> EntityPredictions:
        from shared.prediction.entities import EntityPredictions

        return EntityPredictions(self.entity_index, self.prediction_service)

    @service
    def batch_scorer(self) -> BatchScorer:
        from shared.datasets.store import DatasetStore
        from shared.prediction.batch.jobs import ScoringJobStore
        from shared.prediction.batch.service import BatchScorer

        s = self.storage
        return BatchScorer(
            jobs=ScoringJobStore(
                s.table(Tables.SCORING_JOBS),
                s.table(Tables.SCORING_TARGETS),
                s.table(Tables.SCORING_CHUNKS),
            ),
            registry=self.model_registry,
            loader=self.model_loader,
            predictor=self.predictor,
            inputs=DatasetStore(s.container(Containers.SCORING), s.table(Tables.SCORING_DATASETS)),
            outputs=s.container(Containers.SCORED),
            queue=s.queue(Queues.SCORING),
            idempotency=self.idempotency,
            max_dequeue_count=self.settings.queue_max_dequeue_count,
        )

    # --- monitoring --------------------------------------------------------------------------
    @service
    def drift_monitor(self) -> DriftMonitor:
        from shared.monitoring.drift import DriftMonitor

        # Factories, not instances: a records request never builds the dataset store.
        return DriftMonitor(
            self.model_registry,
            self.model_loader,
            datasets=lambda: self.dataset_store,
            prediction_log=lambda: self.prediction_log,
        )

    @service
    def evaluator(self) -> Evaluator:
        from shared.monitoring.evaluate import Evaluator

        return Evaluator(self.model_registry, self.predictor, self.dataset_store)

    @service
    def report_builder(self) -> ReportBuilder:
        from shared.monitoring.reports import ReportBuilder

        s = self.storage
        return ReportBuilder(
            s.container(Containers.REPORTS),
            s.container(Containers.SCORED),
            self.model_registry,
            lambda: self.drift_monitor,
        )

    # --- ingestion ---------------------------------------------------------------------------
    @service
    def ingestor(self) -> Ingestor:
        from shared.ingestion import Ingestor

        return Ingestor(self.dataset_store, self.idempotency)

    @service
    def scoring_ingestor(self) -> Ingestor:
        """Record ingestion into the scoring datasets (container ``scoring``)."""
        from shared.ingestion import Ingestor

        return Ingestor(self.batch_scorer.inputs, self.idempotency, "ingest-scoring")

    # --- dashboard ---------------------------------------------------------------------------
    @service
    def plot_catalog(self) -> PlotCatalog:
        from shared.dashboard.plots import PlotCatalog

        return PlotCatalog(self.model_registry, self.model_loader)
