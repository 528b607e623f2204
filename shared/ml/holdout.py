"""A fitted pipeline's outputs on the holdout, each computed once.

The holdout metrics and the ONNX parity check both ask the pipeline for its predictions
on the same rows (``predict``, ``predict_proba``, ``decision_function``, ``score_samples``):
each call runs every tree again, which for a 100-tree forest per room was a fifth of a
partition's training time. :class:`HoldoutOutputs` stands in for the pipeline on those rows
and answers each question once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_METHODS = ("predict", "predict_proba", "decision_function", "score_samples")


class HoldoutOutputs:
    """The pipeline's answers on ``X`` (its holdout), memoised per method.

    Where scikit-learn derives one output from another, so does this, with its formula:
    an isolation forest's ``decision_function = score_samples - offset_`` and ``predict =
    -1 where decision_function < 0 else 1``; a forest classifier's ``predict = classes_
    [argmax(predict_proba)]``.
    """

    def __init__(self, pipeline: Any, X: Any) -> None:
        self.pipeline = pipeline
        self.X = X
        self._memo: dict[str, np.ndarray] = {}

    def remember(self, name: str, values: np.ndarray) -> None:
        """Take ``name``'s answer on the holdout from elsewhere (the rows of a pass over
        every row), instead of asking the pipeline again."""
        self._memo[name] = values

    @property
    def classes_(self) -> Any:
        return self.pipeline.classes_

    def __getattr__(self, name: str) -> Any:
        if name not in _METHODS:
            raise AttributeError(name)

        def answer(X: Any) -> np.ndarray:
            if X is not self.X:  # other rows: not memoised
                return getattr(self.pipeline, name)(X)
            return self._output(name)

        return answer

    def _output(self, name: str) -> np.ndarray:
        if name not in self._memo:
            if name == "predict" and self._forest_classifier():
                proba = self._output("predict_proba")
                self._memo[name] = self.pipeline.classes_.take(np.argmax(proba, axis=1), axis=0)
            elif self._isolation_forest() and name in ("predict", "decision_function"):
                decision = self._output("score_samples") - self.pipeline.steps[-1][1].offset_
                self._memo["decision_function"] = decision
                labels = np.ones_like(decision, dtype=int)
                labels[decision < 0] = -1
                self._memo["predict"] = labels
            else:
                self._memo[name] = getattr(self.pipeline, name)(self.X)
        return self._memo[name]

    def _forest_classifier(self) -> bool:
        from sklearn.ensemble._forest import ForestClassifier

        model = self.pipeline.steps[-1][1]
        return isinstance(model, ForestClassifier) and model.n_outputs_ == 1

    def _isolation_forest(self) -> bool:
        from sklearn.ensemble import IsolationForest

        return isinstance(self.pipeline.steps[-1][1], IsolationForest)
