"""The algorithms a training spec may name, per task, with the defaults this platform uses.

Nothing here raises for a bad spec: callers (``train.py``) turn the answers into
``TrainingError`` messages, so every refusal reads the same whatever checks it.
"""

from __future__ import annotations

import importlib
from typing import Any

CLASSIFICATION, REGRESSION, ANOMALY = "classification", "regression", "anomaly"
TASKS = (CLASSIFICATION, REGRESSION, ANOMALY)

# algorithm -> task -> "module:Class". The order of tasks is the order we suggest them in.
_ESTIMATORS: dict[str, dict[str, str]] = {
    "random_forest": {
        CLASSIFICATION: "sklearn.ensemble:RandomForestClassifier",
        REGRESSION: "sklearn.ensemble:RandomForestRegressor",
    },
    "gradient_boosting": {
        CLASSIFICATION: "sklearn.ensemble:GradientBoostingClassifier",
        REGRESSION: "sklearn.ensemble:GradientBoostingRegressor",
    },
    "hist_gradient_boosting": {
        CLASSIFICATION: "sklearn.ensemble:HistGradientBoostingClassifier",
        REGRESSION: "sklearn.ensemble:HistGradientBoostingRegressor",
    },
    "logistic_regression": {CLASSIFICATION: "sklearn.linear_model:LogisticRegression"},
    "linear_regression": {REGRESSION: "sklearn.linear_model:LinearRegression"},
    "ridge": {REGRESSION: "sklearn.linear_model:Ridge"},
    "isolation_forest": {ANOMALY: "sklearn.ensemble:IsolationForest"},
}

ALGORITHMS: tuple[str, ...] = tuple(_ESTIMATORS)

# Linear models are sensitive to feature scale (and converge faster scaled); trees are not.
_SCALED = frozenset({"logistic_regression", "linear_regression", "ridge"})

# n_jobs=1: a Functions worker shares its cores with other invocations, so parallelism is
# a deliberate choice of the spec, never a default.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "n_jobs": 1},
    "logistic_regression": {"max_iter": 1000},
    "isolation_forest": {"n_estimators": 100, "n_jobs": 1},
}


def algorithms_for(task: str) -> list[str]:
    return [name for name, tasks in _ESTIMATORS.items() if task in tasks]


def tasks_for(algorithm: str) -> list[str]:
    return list(_ESTIMATORS.get(algorithm, {}))


def supports(algorithm: str, task: str) -> bool:
    return task in _ESTIMATORS.get(algorithm, {})


def needs_scaling(algorithm: str) -> bool:
    return algorithm in _SCALED


def needs_dense_input(algorithm: str) -> bool:
    # HistGradientBoosting refuses sparse matrices, which one-hot encoding would produce.
    return algorithm == "hist_gradient_boosting"


def make_estimator(algorithm: str, task: str, seed: int) -> Any:
    """An unfitted estimator with this platform's defaults (seeded where it takes a seed)."""
    module_name, _, class_name = _ESTIMATORS[algorithm][task].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    estimator = cls()
    defaults = dict(_DEFAULTS.get(algorithm, {}))
    if "random_state" in estimator.get_params(deep=False):
        defaults["random_state"] = seed
    return estimator.set_params(**defaults)


def unknown_params(estimator: Any, params: dict[str, Any]) -> list[str]:
    """Names in ``params`` the estimator does not take (nested ``a__b`` names included)."""
    valid = estimator.get_params(deep=False)
    return [name for name in params if name not in valid]


# scikit-learn marks a parameter on its way out with this default; it was never set.
_PLACEHOLDERS = frozenset({"deprecated"})


def public_params(estimator: Any) -> dict[str, Any]:
    """The estimator's effective parameters, made JSON-serialisable, without scikit-learn's
    placeholders for deprecated parameters (``"penalty": "deprecated"``)."""
    return {
        name: _jsonable(value)
        for name, value in estimator.get_params(deep=False).items()
        if not (isinstance(value, str) and value in _PLACEHOLDERS)
    }


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy scalar
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or hasattr(value, "tolist"):
        items = value.tolist() if hasattr(value, "tolist") else value
        return [_jsonable(v) for v in items]
    return repr(value)  # e.g. an estimator or a callable: recorded, not round-tripped
