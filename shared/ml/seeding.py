"""scikit-learn's ``check_random_state`` without numpy's entropy draw it throws away.

A tree ensemble seeds a new ``numpy.random.RandomState(int)`` about three times per tree
(the tree's seed, its bootstrap or sample draw, the tree's own fit). ``RandomState(seed)``
first builds an ``MT19937()`` from fresh OS entropy, expanding it into 624 words one numpy
scalar at a time, then overwrites all of them with the legacy seeding of ``seed``: 150 µs
per call, measured, so about 45 ms of a 100-tree isolation forest's 160 ms fit and
decision function on 2,000 rows, the same on every partition of a job.

Here the generator is built from a seed sequence that hands over 624 zero words as a
list (4 µs), and ``RandomState.seed(seed)`` then does what ``RandomState(seed)`` does:
the same legacy seeding, so the same state and the same draws, and the same errors for a
bad seed. The fitted models are the same, tree for tree (``tests/unit/test_seeding.py``).

:func:`install` puts :func:`check_random_state` in place of scikit-learn's in the
scikit-learn modules loaded so far (each holds its own reference, imported by name), and
only once it has checked, on this numpy, that both give the same state.
"""

from __future__ import annotations

import numbers
import sys
import threading
from typing import Any

import numpy as np
from numpy.random.bit_generator import ISeedSequence

_lock = threading.Lock()
_installed_at = -1  # len(sys.modules) when the sklearn modules were last patched
_original: Any = None  # scikit-learn's function, once this numpy passed the check
_usable: bool | None = None


class _ZeroWords(ISeedSequence):
    """A seed sequence for a generator whose state is overwritten at once (see above)."""

    _words = [0] * 624  # MT19937's state length; a list, read word by word cheaply

    def generate_state(self, n_words: int, dtype: Any = np.uint32) -> Any:
        return self._words


_ZERO_WORDS = _ZeroWords()


def check_random_state(seed: Any) -> np.random.RandomState:
    """What ``sklearn.utils.check_random_state`` returns for ``seed``, and what it raises."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        state = np.random.RandomState(np.random.MT19937(_ZERO_WORDS))
        state.seed(seed)  # what RandomState(seed) does after its throw-away entropy draw
        return state
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _same_as_numpy() -> bool:
    for seed in (0, 12345, 2**32 - 1):
        ours, theirs = check_random_state(seed).get_state(), np.random.RandomState(seed).get_state()
        if ours[0] != theirs[0] or not np.array_equal(ours[1], theirs[1]) or ours[2:] != theirs[2:]:
            return False
    return True


def install() -> None:
    """Use :func:`check_random_state` in every scikit-learn module loaded so far. Cheap to
    call before every fit: it looks again only when modules were imported since."""
    global _installed_at, _original, _usable
    if _installed_at == len(sys.modules) or _usable is False:
        return
    with _lock:
        from sklearn.utils import validation

        if _usable is None:
            _usable = _same_as_numpy()  # a numpy whose seeding differs: keep scikit-learn's
            _original = validation.check_random_state if _usable else None
        if not _usable:
            return
        _installed_at = len(sys.modules)
        _replace(_original, check_random_state)


def uninstall() -> None:
    """Put scikit-learn's own function back (tests compare the two)."""
    global _installed_at
    with _lock:
        if _original is None:
            return
        _replace(check_random_state, _original)
        _installed_at = -1


def _modules_using(function: Any) -> list[Any]:
    """The loaded scikit-learn modules whose ``check_random_state`` is ``function``."""
    return [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("sklearn") and getattr(module, "check_random_state", None) is function
    ]


def _replace(old: Any, new: Any) -> None:
    """Every loaded scikit-learn module's ``check_random_state`` that is ``old``: ``new``."""
    for module in _modules_using(old):
        module.check_random_state = new


def installed() -> bool:
    """Whether a loaded scikit-learn module uses :func:`check_random_state` now."""
    return bool(_modules_using(check_random_state))
