"""scikit-learn's per-call costs that a forest pays on every tree, each replaced by an
equivalent that returns the same answer.

A 100-tree isolation forest clones an estimator for each tree, fits it through its own
checks, and scores with every tree: a few milliseconds of real tree building and a
larger share of Python around it, paid again on every partition of a job. Three parts of
that share give the same answer for the same input every time, and are computed once
here or skipped where the answer is known:

1. ``check_random_state`` (:mod:`shared.ml.seeding`): numpy's entropy draw that the
   legacy seeding overwrites at once.
2. ``BaseEstimator._get_param_names``: ``inspect.signature(cls.__init__)`` on every
   ``get_params`` (``clone``, ``_set_random_states``, ...), about four times per tree.
   The answer depends on the constructor alone: it is remembered per constructor.
3. ``sklearn.utils.validation._nw_into_df_or_series``: whether an input (the rows, the
   sample weights, for every tree) is a dataframe or series of any library narwhals
   knows, looked up with ``inspect.getattr_static``. For an exact ``numpy.ndarray`` the
   answer is always no: it is given without the lookup. Anything else is asked as before.

Measured (a 100-tree isolation forest's fit + decision_function on 2,000 rows x 4, with
the platform's seeding; medians of 10 interleaved rounds on the 2-core machine): 112.7 ms
as shipped, 84.4 ms with (2), 72.2 ms with (2) and (3). The fitted models are the same,
tree for tree (``tests/unit/test_speedups.py``).

:func:`install` checks each replacement against scikit-learn's own before using it and
keeps scikit-learn's where they differ; :func:`uninstall` puts everything back.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from shared.ml import seeding

_lock = threading.Lock()
_param_names: dict[Any, tuple[str, ...]] = {}  # constructor -> its parameter names
_stock: dict[str, Any] = {}  # scikit-learn's own functions, while replaced
_checked: bool | None = None  # None: not yet; False: they differed here, left alone


def _remembered_param_names(cls: type) -> list[str]:
    """``BaseEstimator._get_param_names``, once per constructor (a fresh list each call,
    as scikit-learn returns; a constructor it refuses is refused again every time)."""
    init = cls.__init__
    names = _param_names.get(init)
    if names is None:
        names = tuple(_stock["param_names"].__func__(cls))
        _param_names[init] = names
    return list(names)


def _dataframe_probe(x: Any) -> bool:
    """``_nw_into_df_or_series``: an exact ndarray is neither (see module docstring)."""
    return False if type(x) is np.ndarray else _stock["probe"](x)


def _same_answers() -> bool:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline

    own = _stock["param_names"].__func__
    same = all(
        _remembered_param_names(cls) == own(cls)
        for cls in (IsolationForest, Pipeline, ColumnTransformer)
    )
    return same and _stock["probe"](np.zeros((2, 2))) is False


def install() -> None:
    """Use the replacements (and :mod:`shared.ml.seeding`'s). Cheap to call before every
    fit: after the first call only the seeding looks again, for newly loaded modules."""
    global _checked
    seeding.install()
    if _stock or _checked is False:
        return
    with _lock:
        if _stock or _checked is False:
            return
        from sklearn import base
        from sklearn.utils import validation

        _stock["param_names"] = base.BaseEstimator.__dict__["_get_param_names"]
        _stock["probe"] = validation._nw_into_df_or_series
        if _checked is None:
            try:
                _checked = _same_answers()
            except Exception:  # noqa: BLE001 - a scikit-learn these do not fit: keep its own
                _checked = False
        if not _checked:
            _stock.clear()
            _param_names.clear()
            return
        base.BaseEstimator._get_param_names = classmethod(_remembered_param_names)
        validation._nw_into_df_or_series = _dataframe_probe


def uninstall() -> None:
    """scikit-learn's own functions everywhere again (tests and the benchmark compare)."""
    seeding.uninstall()
    with _lock:
        if _stock:
            from sklearn import base
            from sklearn.utils import validation

            base.BaseEstimator._get_param_names = _stock["param_names"]
            validation._nw_into_df_or_series = _stock["probe"]
        _stock.clear()
        _param_names.clear()


def installed() -> bool:
    """Whether scikit-learn runs with the replacements now (the benchmark's bare loop
    must not)."""
    from sklearn import base
    from sklearn.utils import validation

    return (
        base.BaseEstimator.__dict__["_get_param_names"].__func__ is _remembered_param_names
        or validation._nw_into_df_or_series is _dataframe_probe
        or seeding.installed()
    )
