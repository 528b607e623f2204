"""HoldoutOutputs answers exactly what the pipeline answers, running the model once per
kind of output (the metrics and the parity check shared nothing before)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.ml.holdout import HoldoutOutputs
from shared.ml.pipeline import build_pipeline, prepare_frame

FEATURES = [{"name": f"x{i}", "dtype": "number"} for i in range(4)]


def frame(n: int = 300, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=[f["name"] for f in FEATURES])
    y = np.where(X["x0"] + rng.normal(0, 0.5, n) > 0, "yes", "no")
    return prepare_frame(X, FEATURES), y


class Counting:
    """Counts the final estimator's calls (each one is a pass over every tree)."""

    def __init__(self, model: object, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        for name in ("predict", "predict_proba", "decision_function", "score_samples"):
            original = getattr(type(model), name, None)
            if original is None:
                continue

            def wrapped(self_, X, _name=name, _original=original):
                self.calls.append(_name)
                return _original(self_, X)

            monkeypatch.setattr(type(model), name, wrapped)


def test_isolation_forest_outputs_equal_sklearns_from_one_pass(monkeypatch) -> None:
    from sklearn.ensemble import IsolationForest

    X, _ = frame()
    pipe = build_pipeline(
        FEATURES, IsolationForest(n_estimators=30, random_state=0), scale=False, dense=True
    )
    pipe.fit(X)
    expected = {m: getattr(pipe, m)(X) for m in ("predict", "decision_function", "score_samples")}
    counting = Counting(pipe.steps[-1][1], monkeypatch)
    answers = HoldoutOutputs(pipe, X)
    for _ in range(2):
        for method, value in expected.items():
            np.testing.assert_array_equal(getattr(answers, method)(X), value)
    assert counting.calls == ["score_samples"]


def test_forest_classifier_predict_comes_from_its_probabilities(monkeypatch) -> None:
    from sklearn.ensemble import RandomForestClassifier

    X, y = frame()
    model = RandomForestClassifier(n_estimators=30, random_state=0)
    pipe = build_pipeline(FEATURES, model, scale=False, dense=True).fit(X, y)
    labels, proba = pipe.predict(X), pipe.predict_proba(X)
    counting = Counting(model, monkeypatch)
    answers = HoldoutOutputs(pipe, X)
    np.testing.assert_array_equal(answers.predict(X), labels)
    np.testing.assert_array_equal(answers.predict_proba(X), proba)
    np.testing.assert_array_equal(answers.predict(X), labels)
    assert counting.calls == ["predict_proba"]
    assert list(answers.classes_) == ["no", "yes"]


def test_other_rows_and_other_models_are_asked_directly(monkeypatch) -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = frame()
    model = LogisticRegression()
    pipe = build_pipeline(FEATURES, model, scale=True, dense=False).fit(X, y)
    answers = HoldoutOutputs(pipe, X)
    other, _ = frame(50, seed=2)
    np.testing.assert_array_equal(answers.predict(other), pipe.predict(other))
    counting = Counting(model, monkeypatch)
    answers.predict(X)
    once = list(counting.calls)
    answers.predict(X)
    assert once[0] == "predict" and counting.calls == once  # asked once, then remembered
    with pytest.raises(AttributeError):
        answers.fit  # noqa: B018 - only the four prediction methods are stood in for
