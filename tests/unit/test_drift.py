"""Drift statistics on synthetic numbers: no storage, no HTTP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from shared.ml.profile import build_profile
from shared.monitoring.schemas import DriftRequest
from shared.monitoring.statistics import (
    QuantileCdf,
    RowSample,
    Thresholds,
    canonical_columns,
    compare,
    ks_p_value,
    ks_statistic,
    ks_statistic_with_jumps,
    psi,
)

SEEDS = range(5)
COLORS = ["red", "green", "blue", "black"]
MIX = [0.4, 0.3, 0.2, 0.1]


def frame(rng: np.random.Generator, n: int, shift: float = 0.0, mix=MIX) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(10 + shift, 2, n),
            "y": rng.exponential(3, n),
            "hour": rng.integers(0, 24, n),
            "color": rng.choice(COLORS, size=n, p=mix),
            "flag": rng.random(n) < 0.3,
        }
    )


DEFAULT = Thresholds()


def check(train: pd.DataFrame, new: pd.DataFrame, t: Thresholds = DEFAULT) -> dict:
    profile = build_profile(train, list(train.columns))
    results = compare(profile, canonical_columns(new, profile["features"]), t)
    return {r.name: r for r in results}


# --- the reconstructed CDF and the KS statistic -----------------------------------------------


def test_quantile_cdf_is_piecewise_linear_and_jumps_at_tied_quantiles() -> None:
    cdf = QuantileCdf([0, 1, 1, 3], [0, 0.25, 0.75, 1])
    assert cdf([-1, 0, 0.5, 1, 2, 3, 4]).tolist() == pytest.approx([0, 0, 0.125, 0.75, 0.875, 1, 1])
    assert cdf.left([0.5, 1, 3]).tolist() == pytest.approx([0.125, 0.25, 1])
    assert not cdf.continuous
    assert QuantileCdf([0, 1, 2], [0, 0.5, 1]).continuous
    with pytest.raises(ValueError):
        QuantileCdf([0, 2, 1], [0, 0.5, 1])  # not sorted


def test_ks_statistic_is_kstests_for_continuous_data() -> None:
    rng = np.random.default_rng(0)
    quantiles = np.quantile(rng.normal(size=2000), np.linspace(0, 1, 21))
    cdf = QuantileCdf(quantiles, np.linspace(0, 1, 21))
    values = rng.normal(0.3, 1, 500)
    expected = stats.kstest(values, cdf).statistic
    assert ks_statistic(values, cdf) == pytest.approx(expected)
    assert ks_statistic_with_jumps(values, cdf) == pytest.approx(expected)


def test_ks_statistic_handles_ties_and_constants() -> None:
    constant = QuantileCdf([5.0] * 21, np.linspace(0, 1, 21))
    assert ks_statistic(np.full(50, 5.0), constant) == 0.0
    assert ks_statistic(np.full(50, 6.0), constant) == 1.0
    half = np.r_[np.full(25, 5.0), np.full(25, 7.0)]
    assert ks_statistic(half, constant) == pytest.approx(0.5)


def test_p_value_is_calibrated_to_the_training_sample_size() -> None:
    # The same distance is weaker evidence against a profile of 100 rows than of 100,000.
    assert ks_p_value(0.1, 1000, 100) > ks_p_value(0.1, 1000, 100_000)
    assert ks_p_value(0.1, 1000, 10**9) == pytest.approx(stats.kstwo.sf(0.1, 1000), rel=1e-3)


# --- PSI -----------------------------------------------------------------------------------------


def test_psi_values_are_sane() -> None:
    assert psi([100, 100, 100], [100, 100, 100]) == pytest.approx(0.0)
    assert psi([100, 100, 100], [200, 200, 200]) == pytest.approx(0.0)  # shares, not counts
    two = psi([50, 50], [90, 10])
    assert 0.8 < two < 0.9  # (0.4 ln 1.8 + 0.4 ln 5) = 0.879, a little less smoothed
    assert psi([90, 10], [50, 50]) == pytest.approx(two, rel=0.05)  # symmetric by design
    assert np.isfinite(psi([100, 0], [0, 100]))  # empty bins stay finite
    assert psi([10, 10], [12, 8]) < psi([10, 10], [16, 4])


def test_numeric_psi_of_a_one_sigma_shift_is_about_one() -> None:
    rng = np.random.default_rng(1)
    out = check(frame(rng, 20_000), frame(rng, 20_000, shift=2.0))  # x has sigma 2
    assert 0.7 < out["x"].psi < 1.4  # normal theory: PSI of a mean shift d*sigma ~ d^2
    assert out["y"].psi < 0.01


# --- verdicts across seeds -------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_a_shifted_numeric_feature_drifts_and_the_others_do_not(seed: int) -> None:
    rng = np.random.default_rng(seed)
    out = check(frame(rng, 5000), frame(rng, 1000, shift=2.0))
    assert out["x"].drift is True and out["x"].test == "ks" and out["x"].p_value < 1e-6
    assert out["x"].statistic > 0.3
    for name in ("y", "hour", "color", "flag"):
        assert out[name].drift is False, (name, out[name])


@pytest.mark.parametrize("seed", SEEDS)
def test_a_changed_category_mix_drifts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    out = check(frame(rng, 5000), frame(rng, 1000, mix=[0.1, 0.2, 0.3, 0.4]))
    assert out["color"].drift is True and out["color"].test == "chi2"
    assert out["color"].kind == "categorical" and out["color"].psi > 0.5
    assert out["x"].drift is False and out["flag"].drift is False


@pytest.mark.parametrize("seed", range(10))
def test_the_same_distribution_is_not_flagged(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    out = check(frame(rng, 5000), frame(rng, 2000))
    assert [r for r in out.values() if r.drift] == []
    assert all(r.psi < 0.05 for r in out.values())


def test_p_value_alone_still_calibrated_on_moderate_samples() -> None:
    # With psi_threshold 0 the p-value decides alone; under no drift it flags ~5%.
    flagged = 0
    for seed in range(40):
        rng = np.random.default_rng(200 + seed)
        out = check(frame(rng, 2000), frame(rng, 300), Thresholds(p_value=0.05, psi=0.0))
        flagged += bool(out["x"].drift) + bool(out["color"].drift)
    assert flagged <= 10  # of 80 tests; 4 expected at the 5% level


def test_unseen_categories_pool_into_other_and_drift() -> None:
    rng = np.random.default_rng(3)
    new = frame(rng, 500)
    new.loc[: len(new) // 2, "color"] = "purple"
    out = check(frame(rng, 3000), new)
    assert out["color"].drift is True


def test_a_bool_flip_drifts() -> None:
    rng = np.random.default_rng(4)
    new = frame(rng, 500)
    new["flag"] = rng.random(500) < 0.8
    out = check(frame(rng, 3000), new)
    assert out["flag"].drift is True and out["flag"].kind == "categorical"


def test_too_few_values_are_not_tested() -> None:
    rng = np.random.default_rng(5)
    new = frame(rng, 100)
    new.loc[10:, "x"] = np.nan
    out = check(frame(rng, 1000), new)
    assert out["x"].drift is None and out["x"].n == 10 and out["x"].missing == 90
    assert "fewer than 20" in out["x"].reason
    assert out["y"].drift is False


def test_absent_features_say_so() -> None:
    rng = np.random.default_rng(6)
    out = check(frame(rng, 1000), frame(rng, 200).drop(columns=["y"]))
    assert out["y"].drift is None and out["y"].reason == "not in the data"


def test_canonical_columns_read_values_as_training_did() -> None:
    new = pd.DataFrame(
        {"x": [1, "oops", None], "color": ["red", "", None], "flag": [True, False, None]}
    )
    features = {
        "x": {"dtype": "number"},
        "color": {"dtype": "string"},
        "flag": {"dtype": "bool"},
    }
    cols = canonical_columns(new, features)
    assert cols["x"][0] == 1 and np.isnan(cols["x"][1]) and np.isnan(cols["x"][2])
    assert cols["color"].tolist() == ["red", None, None]
    assert cols["flag"].tolist() == ["true", "false", None]


def test_row_sample_is_bounded_and_uniform() -> None:
    sample = RowSample({"i": {"dtype": "number"}, "c": {"dtype": "string"}}, cap=1000)
    for start in range(0, 20_000, 2000):
        ids = np.arange(start, start + 2000, dtype=float)
        sample.add({"i": ids}, len(ids))  # "c" never present
    assert sample.n_rows == 1000 and sample.seen == 20_000
    assert len(set(sample.columns["i"].tolist())) == 1000
    assert abs(sample.columns["i"].mean() - 10_000) < 1000  # not the first rows
    assert list(sample.carried()) == ["i"]


def test_drift_request_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError):
        DriftRequest()
    with pytest.raises(ValidationError):
        DriftRequest(records=[{"x": 1}], dataset="d")
    with pytest.raises(ValidationError):
        DriftRequest(records=[])
    with pytest.raises(ValidationError):
        DriftRequest(dataset="d", p_value_threshold=1.5)
    assert DriftRequest(dataset="d").psi_threshold == 0.2
