"""Feature kinds, the canonical input frame, and the scikit-learn preprocessing pipeline.

Every model sees its features in one canonical form, produced by :func:`prepare_frame`
both when training and when predicting (skops fallback) and mirrored by the ONNX feed:

* ``number``: float64, missing and +/-inf as NaN (imputed with the training median).
* ``string`` (text and categories): Python ``str``, missing as ``""``. ONNX string
  tensors cannot hold a null, and skl2onnx's imputer only matches a *string* missing
  marker, so the empty string is the one marker both runtimes understand.
* ``bool``: float64 0/1, missing as NaN, so ONNX can take it as a float tensor; it is
  still one-hot encoded (a category, not a magnitude).
* ``datetime``: never a feature. Timestamps do not generalise as raw numbers; derive
  numeric features (hour, weekday, age in days, ...) upstream instead.

scikit-learn is imported only by :func:`build_pipeline`, so the prediction path can
prepare frames without loading it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

NUMBER, STRING, BOOL, DATETIME = "number", "string", "bool", "datetime"
FEATURE_KINDS = (NUMBER, STRING, BOOL)
MISSING_STRING = ""
MISSING_CATEGORY = "__missing__"

# Portable dtype names (shared/datasets/dtypes.py) and pandas spellings -> feature kind.
_KIND_OF_NAME = {
    "int64": NUMBER,
    "float64": NUMBER,
    "number": NUMBER,
    "bool": BOOL,
    "boolean": BOOL,
    "string": STRING,
    "str": STRING,
    "object": STRING,
    "category": STRING,
    "datetime": DATETIME,
}


def kind_of_dtype(dtype: Any) -> str:
    """``number`` | ``string`` | ``bool`` | ``datetime`` for a pandas dtype or a dtype name."""
    if isinstance(dtype, str):
        name = dtype.strip().lower()
        if name in _KIND_OF_NAME:
            return _KIND_OF_NAME[name]
        if name.startswith(("datetime", "timestamp", "date")):
            return DATETIME
        if name.startswith(("int", "uint", "float")):
            return NUMBER
        return STRING
    from pandas.api import types as t

    if isinstance(dtype, pd.CategoricalDtype):
        return STRING
    if t.is_bool_dtype(dtype):
        return BOOL
    if t.is_numeric_dtype(dtype):
        return NUMBER
    if t.is_datetime64_any_dtype(dtype):
        return DATETIME
    return STRING


def describe_features(df: pd.DataFrame, names: Sequence[str]) -> list[dict[str, str]]:
    """``[{"name", "dtype"}]`` for the given columns, in the given order."""
    return [{"name": str(n), "dtype": kind_of_dtype(df[n].dtype)} for n in names]


def _as_number(series: pd.Series) -> np.ndarray:
    if kind_of_dtype(series.dtype) == BOOL:
        series = series.astype("Float64")
    values = pd.to_numeric(series, errors="coerce").astype("Float64")
    out = values.to_numpy(dtype="float64", na_value=np.nan)
    out[np.isinf(out)] = np.nan  # the imputer refuses infinities; treat them as unknown
    return out


_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


def _as_bool(series: pd.Series) -> np.ndarray:
    kind = kind_of_dtype(series.dtype)
    if kind in (BOOL, NUMBER):
        out = _as_number(series)
        out[~np.isnan(out)] = out[~np.isnan(out)] != 0
        return out
    # Text (e.g. JSON prediction input): the usual spellings, anything else unknown.
    text = series.astype("string").str.strip().str.lower()
    out = np.full(len(series), np.nan)
    out[text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)] = 1.0
    out[text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)] = 0.0
    return out


def _as_string(series: pd.Series) -> np.ndarray:
    missing = series.isna().to_numpy(dtype=bool)
    out = np.array([str(v) for v in series.astype(object).to_numpy()], dtype=object)
    out[missing] = MISSING_STRING
    return out


_CONVERTERS = {NUMBER: _as_number, STRING: _as_string, BOOL: _as_bool}


def prepare_frame(df: pd.DataFrame, features: Sequence[dict[str, str]]) -> pd.DataFrame:
    """The canonical model input: only the features, in order, each in its kind's form."""
    missing = [f["name"] for f in features if f["name"] not in df.columns]
    if missing:
        raise KeyError(f"Missing feature column(s): {', '.join(missing)}.")
    return pd.DataFrame(
        {f["name"]: _CONVERTERS[f["dtype"]](df[f["name"]]) for f in features},
        index=df.index,
    )


def build_pipeline(
    features: Sequence[dict[str, str]], estimator: Any, *, scale: bool, dense: bool
) -> Pipeline:
    """``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``.

    One transformer per kind (skl2onnx concatenates the inputs of a transformer, and a
    tensor holds one element type). ``dense`` turns one-hot output into dense arrays for
    estimators that refuse sparse input.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def names(kind: str) -> list[str]:
        return [f["name"] for f in features if f["dtype"] == kind]

    def one_hot() -> OneHotEncoder:
        return OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)

    number_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        number_steps.append(("scale", StandardScaler()))
    branches = {
        NUMBER: Pipeline(number_steps),
        STRING: Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(
                        missing_values=MISSING_STRING,
                        strategy="constant",
                        fill_value=MISSING_CATEGORY,
                    ),
                ),
                ("onehot", one_hot()),
            ]
        ),
        BOOL: Pipeline(
            [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", one_hot())]
        ),
    }
    transformers = [(kind, branch, names(kind)) for kind, branch in branches.items() if names(kind)]
    preprocess = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("preprocess", preprocess), ("model", estimator)])
