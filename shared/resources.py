"""Every storage name of the platform (tables, blob containers, queues), in one place.

Services receive their clients already bound to these names (see ``shared.container``);
the queue/timer bindings in ``functions/`` name their queues from here too, so a queue
is spelled once. Standard library only.
"""

from __future__ import annotations

from typing import Final


class Tables:
    USERS: Final = "Users"
    ROLES: Final = "Roles"
    API_KEYS: Final = "ApiKeys"
    REVOKED_TOKENS: Final = "RevokedTokens"
    LOGIN_ATTEMPTS: Final = "LoginAttempts"
    AUDIT: Final = "Audit"
    IDEMPOTENCY: Final = "Idempotency"
    MODELS: Final = "Models"
    ALIASES: Final = "Aliases"
    DATASETS: Final = "Datasets"
    TRAINING_SPECS: Final = "TrainingSpecs"
    JOBS: Final = "Jobs"
    JOB_UNITS: Final = "JobUnits"
    SCORING_JOBS: Final = "ScoringJobs"
    SCORING_TARGETS: Final = "ScoringTargets"
    SCORING_CHUNKS: Final = "ScoringChunks"
    SCORING_DATASETS: Final = "ScoringDatasets"
    TRAFFIC: Final = "Traffic"
    AB_STATS: Final = "AbStats"
    PREDICTIONS: Final = "Predictions"
    RATE_LIMITS: Final = "RateLimits"


class Containers:
    MODELS: Final = "models"
    DATASETS: Final = "datasets"
    SCORING: Final = "scoring"  # scoring data in
    SCORED: Final = "scored"  # scored output out
    TRAINING_STAGING: Final = "training-staging"
    REPORTS: Final = "reports"
    ENTITIES: Final = "entities"  # entity feature indexes


class Queues:
    TRAINING: Final = "training"
    SCORING: Final = "scoring"

    @staticmethod
    def poison(queue: str) -> str:
        """Where the Functions host moves a message that failed every retry."""
        return f"{queue}-poison"


# The queue trigger bindings need literal names at import time.
TRAINING_POISON: Final = Queues.poison(Queues.TRAINING)
SCORING_POISON: Final = Queues.poison(Queues.SCORING)
