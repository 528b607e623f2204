"""shared.ml.seeding: scikit-learn's check_random_state, built without numpy's throw-away
entropy draw. The states, the errors and every fitted model are the same as with
scikit-learn's own function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import sklearn.ensemble._bagging
import sklearn.tree._classes
from sklearn.utils import validation

from shared.ml import seeding

SKLEARN_OWN = validation.check_random_state


@pytest.fixture
def stock() -> Iterator[None]:
    """scikit-learn's own function everywhere, then this module's back as it was."""
    seeding.uninstall()
    yield
    seeding.install()


@pytest.mark.parametrize(
    "seed", [0, 1, 42, 2**31, 2**32 - 1, np.int64(7), np.uint32(9), np.int8(3), True]
)
def test_the_same_state_and_draws_as_numpy_for_every_integer_seed(seed: Any) -> None:
    ours, theirs = seeding.check_random_state(seed), np.random.RandomState(seed)
    assert ours is not theirs
    a, b = ours.get_state(), theirs.get_state()
    assert a[0] == b[0] and a[2:] == b[2:]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(ours.randint(0, 2**31, 50), theirs.randint(0, 2**31, 50))
    np.testing.assert_array_equal(ours.normal(size=7), theirs.normal(size=7))
    np.testing.assert_array_equal(ours.permutation(30), theirs.permutation(30))


def test_each_call_is_a_new_generator() -> None:
    first, second = seeding.check_random_state(5), seeding.check_random_state(5)
    assert first is not second
    first.random_sample(10)  # drawing from one leaves the other where it started
    assert second.random_sample() == np.random.RandomState(5).random_sample()


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "42", [1, 2], object()])
def test_a_bad_seed_raises_what_scikit_learn_raises(seed: Any) -> None:
    with pytest.raises(Exception) as theirs:
        SKLEARN_OWN(seed)
    with pytest.raises(theirs.type) as ours:
        seeding.check_random_state(seed)
    assert str(ours.value) == str(theirs.value)


def test_none_and_an_instance_pass_as_in_scikit_learn() -> None:
    assert seeding.check_random_state(None) is SKLEARN_OWN(None) is np.random.mtrand._rand
    assert seeding.check_random_state(np.random) is np.random.mtrand._rand
    state = np.random.RandomState(3)
    assert seeding.check_random_state(state) is state


def test_install_replaces_the_reference_each_module_imported(stock: None) -> None:
    assert sklearn.ensemble._bagging.check_random_state is SKLEARN_OWN
    seeding.install()
    for module in (sklearn.ensemble._bagging, sklearn.tree._classes, validation):
        assert module.check_random_state is seeding.check_random_state
    seeding.uninstall()
    assert sklearn.tree._classes.check_random_state is SKLEARN_OWN


def test_a_numpy_that_seeds_differently_keeps_scikit_learns_function(
    stock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seeding, "_usable", None)
    monkeypatch.setattr(seeding, "_original", None)
    monkeypatch.setattr(seeding, "_same_as_numpy", lambda: False)
    seeding.install()
    assert sklearn.ensemble._bagging.check_random_state is SKLEARN_OWN
    monkeypatch.undo()
