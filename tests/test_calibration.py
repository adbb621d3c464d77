"""Score calibration and fusion: prior-weighted logistic regression to LLRs, and its JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lcnn.errors import DataError
from lcnn.metrics import (
    Calibration,
    Fusion,
    act_dcf,
    compute_eer,
    effective_prior,
    fit_calibration,
    fit_fusion,
    min_dcf,
)
from lcnn.metrics.calibration import L2


def _gaussian(seed: int, n_bona: int = 20_000, n_spoof: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``0.1 x + 5`` of classes N(+-2, 1) in x: the true LLR is ``4 x = 40 score - 200``."""
    rng = np.random.default_rng(seed)
    return 0.1 * rng.normal(2, 1, n_bona) + 5, 0.1 * rng.normal(-2, 1, n_spoof) + 5


def test_effective_prior() -> None:
    assert effective_prior() == pytest.approx(0.95 / (0.95 + 0.5))
    assert effective_prior(0.5, 1, 1) == 0.5


@pytest.mark.parametrize("sizes", [(20_000, 20_000), (2_000, 20_000), (20_000, 2_000)])
def test_calibration_recovers_the_true_llr_whatever_the_class_counts(sizes: tuple[int, int]) -> None:
    # Each class's loss is a mean weighted by its prior, so the class counts must not move the LLR; the
    # logit-prior offset makes the result an LLR rather than posterior log-odds (LLR 0 at score 5).
    bona, spoof = _gaussian(0, *sizes)
    cal = fit_calibration(bona, spoof)
    assert cal.a == pytest.approx(40, rel=0.1)
    assert abs(cal.apply(5.0)) < 0.2
    assert (cal.p_spoof, cal.c_miss, cal.c_fa) == (0.05, 1.0, 10.0)


def test_calibration_fixes_act_dcf_and_keeps_min_dcf_and_eer() -> None:
    bona, spoof = _gaussian(1)
    assert act_dcf(bona, spoof) - min_dcf(bona, spoof) > 0.5  # raw scores: all near 5, far from LLRs
    cal = fit_calibration(bona, spoof)
    llr_bona, llr_spoof = cal.apply(bona), cal.apply(spoof)
    assert cal.a > 0
    assert act_dcf(llr_bona, llr_spoof) - min_dcf(bona, spoof) < 0.01
    assert min_dcf(llr_bona, llr_spoof) == min_dcf(bona, spoof)
    assert compute_eer(llr_bona, llr_spoof)[0] == compute_eer(bona, spoof)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fitting_at_the_operating_point_beats_fitting_at_another(seed: int) -> None:
    # Unequal variances make the true LLR quadratic, so the best affine map depends on the prior it serves.
    rng = np.random.default_rng(seed)
    bona, spoof = rng.normal(1, 1, 20_000), rng.normal(-1, 2.5, 20_000)
    here = fit_calibration(bona, spoof)
    elsewhere = fit_calibration(bona, spoof, p_spoof=0.5, c_miss=1, c_fa=1)
    assert act_dcf(here.apply(bona), here.apply(spoof)) < act_dcf(elsewhere.apply(bona), elsewhere.apply(spoof))


def test_calibration_of_separable_scores_stays_finite_and_deterministic() -> None:
    bona, spoof = np.array([2.0, 3.0, 4.0, 2.5]), np.array([0.0, 1.0, -1.0])
    cal = fit_calibration(bona, spoof)
    llr_bona, llr_spoof = cal.apply(bona), cal.apply(spoof)
    assert np.isfinite([cal.a, cal.b]).all() and cal.a > 0
    # The L2 term stops the weights at a finite size: without it they grow until the optimiser gives up.
    assert np.abs(cal.apply([1.0, 2.0])).max() < 12  # the trials at the edges of the gap
    assert act_dcf(llr_bona, llr_spoof) == 0.0
    assert fit_calibration(bona, spoof) == cal


def test_calibration_is_invariant_to_affine_changes_of_the_scores() -> None:
    rng = np.random.default_rng(3)
    bona, spoof = rng.normal(1, 1, 3000), rng.normal(-1, 1.5, 4000)
    expected = fit_calibration(bona, spoof).apply(bona)
    for scale, shift in [(1000.0, -3.0), (1e-4, 7.0)]:
        cal = fit_calibration(scale * bona + shift, scale * spoof + shift)
        np.testing.assert_allclose(cal.apply(scale * bona + shift), expected, rtol=1e-6, atol=1e-6)


def test_fusion_of_two_noisy_views_beats_each() -> None:
    rng = np.random.default_rng(4)
    signal_bona, signal_spoof = rng.normal(1, 1, 5000), rng.normal(-1, 1, 5000)
    bona = signal_bona[:, None] + rng.normal(0, 1, (5000, 2))
    spoof = signal_spoof[:, None] + rng.normal(0, 1, (5000, 2))
    fusion = fit_fusion(bona, spoof)
    fused = min_dcf(fusion.apply(bona), fusion.apply(spoof))
    assert fused < min(min_dcf(bona[:, 0], spoof[:, 0]), min_dcf(bona[:, 1], spoof[:, 1])) - 0.03
    assert all(w > 0 for w in fusion.weights)
    assert fusion.weights[0] == pytest.approx(fusion.weights[1], rel=0.2)  # equally informative views
    assert act_dcf(fusion.apply(bona), fusion.apply(spoof)) - fused < 0.02


def test_calibration_is_the_prior_weighted_logistic_regression() -> None:
    """Against an independent solver: scikit-learn's logistic regression with each class weighted by its prior
    over its count, on standardised scores with the documented ridge ``L2 |w'|^2`` (sklearn's ``1 / 2C``); its
    intercept is the LLR's bias plus the prior's logit. (Without the ridge the slope is 0.2 % steeper here.)"""
    from sklearn.linear_model import LogisticRegression

    bona, spoof = _gaussian(5, 500, 700)
    prior = effective_prior()
    x = np.concatenate((bona, spoof))[:, None]
    y = np.r_[np.ones(len(bona)), np.zeros(len(spoof))]
    weight = np.r_[np.full(len(bona), prior / len(bona)), np.full(len(spoof), (1 - prior) / len(spoof))]
    mean, std = x.mean(), x.std()  # the solver converges on standardised scores; mapped back below
    solver = LogisticRegression(C=1 / (2 * L2), tol=1e-12, max_iter=10_000)
    reference = solver.fit((x - mean) / std, y, sample_weight=weight)
    a = reference.coef_[0, 0] / std
    b = reference.intercept_[0] - a * mean - np.log(prior / (1 - prior))
    cal = fit_calibration(bona, spoof)
    assert (cal.a, cal.b) == (pytest.approx(a, rel=1e-4), pytest.approx(b, rel=1e-4))
    # One system's fusion is its calibration: an API promise (fit_calibration calls fit_fusion today, so this
    # part holds by construction; it is kept to hold the promise if either changes).
    fusion = fit_fusion(bona[:, None], spoof[:, None])
    assert (cal.a, cal.b) == (fusion.weights[0], fusion.bias)
    np.testing.assert_array_equal(fusion.apply(bona), cal.apply(bona))
    np.testing.assert_array_equal(fusion.apply(bona[:, None]), cal.apply(bona))


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        fit_calibration([], [1.0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_calibration([1.0, np.inf], [0.0])
    with pytest.raises(ValueError, match="same score"):
        fit_calibration([1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        fit_fusion(np.ones((3, 2)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="p_spoof"):
        fit_calibration([1.0, 2.0], [0.0], p_spoof=0.0)


def test_apply_checks_the_number_of_systems() -> None:
    fusion = Fusion((1.0, 2.0), 0.5)
    np.testing.assert_array_equal(fusion.apply([[1.0, 1.0], [0.0, -1.0]]), [3.5, -1.5])
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        fusion.apply([1.0, 2.0])
    assert Calibration(2.0, -1.0).apply([[0.0, 1.0]]).tolist() == [[-1.0, 1.0]]


@pytest.mark.parametrize(
    "model", [Calibration(2.5, -1.25), Calibration(0.5, 3.0, 0.1, 2, 5), Fusion((0.75, -0.5, 2.0), 0.125, 0.2)]
)
def test_to_dict_round_trips_through_json(model: Calibration | Fusion) -> None:
    data = json.loads(json.dumps(model.to_dict()))
    assert type(model).from_dict(data) == model
    assert data["type"] == type(model).__name__.lower()


def test_fitted_models_round_trip() -> None:
    bona, spoof = _gaussian(6, 300, 300)
    cal = fit_calibration(bona, spoof)
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    fusion = fit_fusion(np.c_[bona, bona**2], np.c_[spoof, spoof**2])
    assert Fusion.from_dict(json.loads(json.dumps(fusion.to_dict()))) == fusion


GOOD_CAL = {"type": "calibration", "a": 2.0, "b": -1.0, "p_spoof": 0.05, "c_miss": 1.0, "c_fa": 10.0}
GOOD_FUSION = {"type": "fusion", "weights": [1.0, 0.5], "bias": 0.0, "p_spoof": 0.05, "c_miss": 1, "c_fa": 10}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([2.0, -1.0], "expected a dict"),
        ({k: v for k, v in GOOD_CAL.items() if k != "b"}, r"missing keys \['b'\]"),
        ({**GOOD_CAL, "scale": 1.0}, r"unknown keys \['scale'\]"),
        ({**GOOD_CAL, "type": "fusion"}, "not a 'calibration'"),
        ({**GOOD_CAL, "a": "2.0"}, "'a' must be a finite number"),
        ({**GOOD_CAL, "a": True}, "'a' must be a finite number"),
        ({**GOOD_CAL, "b": float("nan")}, "'b' must be a finite number"),
        ({**GOOD_CAL, "p_spoof": 1.5}, "p_spoof must be in"),
        ({**GOOD_CAL, "c_fa": -1}, "costs must be positive"),
    ],
)
def test_calibration_from_dict_rejects_malformed_input(data: object, match: str) -> None:
    assert Calibration.from_dict(GOOD_CAL) == Calibration(2.0, -1.0)
    with pytest.raises(DataError, match=match):
        Calibration.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (None, "expected a dict"),
        (GOOD_CAL, "not a 'fusion'"),
        ({**GOOD_FUSION, "weights": []}, "non-empty list"),
        ({**GOOD_FUSION, "weights": "1.0"}, "non-empty list"),
        ({**GOOD_FUSION, "weights": [1.0, "x"]}, "'weights' must be a finite number"),
        ({**GOOD_FUSION, "weights": [[1.0, 2.0]]}, "'weights' must be a finite number"),
        ({**GOOD_FUSION, "bias": None}, "'bias' must be a finite number"),
        ({k: v for k, v in GOOD_FUSION.items() if k != "c_miss"}, r"missing keys \['c_miss'\]"),
        ({**GOOD_FUSION, "p_spoof": 0}, "p_spoof must be in"),
    ],
)
def test_fusion_from_dict_rejects_malformed_input(data: object, match: str) -> None:
    assert Fusion.from_dict(GOOD_FUSION) == Fusion((1.0, 0.5), 0.0)
    with pytest.raises(DataError, match=match):
        Fusion.from_dict(data)  # type: ignore[arg-type]


def test_constructors_validate() -> None:
    with pytest.raises(ValueError, match="finite"):
        Calibration(float("inf"), 0.0)
    with pytest.raises(ValueError, match="weights"):
        Fusion((), 0.0)
    assert Fusion([1, 2], 0).weights == (1.0, 2.0)  # stored as a tuple of floats, hashable
    hash(Fusion([1, 2], 0))
