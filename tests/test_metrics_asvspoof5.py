"""ASVspoof 5 metrics against the official evaluation package's numbers, plus checks on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED

import lcnn.metrics.sasv as sasv
from lcnn.metrics import (
    a_dcf,
    act_dcf,
    asv_error_rates,
    cllr,
    compute_det_curve,
    compute_eer,
    min_cllr,
    min_dcf,
    min_tdcf,
    pav_llrs,
    t_eer,
    tdcf_curve,
)

REF = SHARED / "fixtures" / "asvspoof5_metrics_ref.npz"
#: The organisers' pooled ASV error rates (pfa_asv, pmiss_asv, pfa_spoof_asv) of ASVspoof 5 Track 2.
ASV5_RATES = (0.01881016557566423, 0.01880141010575793, 0.4607082907604729)
METRICS = ("eer", "min_dcf", "act_dcf", "cllr", "a_dcf", "min_tdcf", "t_eer")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    if not REF.exists():
        pytest.skip(f"ASVspoof 5 reference fixtures absent: {REF}")
    with np.load(REF) as data:
        return {k: data[k] for k in data.files}


def _metric(ref: dict[str, np.ndarray], name: str, i: int) -> float:
    bona, spoof = ref[f"cm_bona_{i}"], ref[f"cm_spoof_{i}"]
    keys, cm, asv, sv = ref[f"asv_keys_{i}"], ref[f"cmt_{i}"], ref[f"asv_{i}"], ref[f"sasv_{i}"]
    if name == "eer":
        return compute_eer(bona, spoof)[0]
    if name in ("min_dcf", "act_dcf", "cllr"):
        return {"min_dcf": min_dcf, "act_dcf": act_dcf, "cllr": cllr}[name](bona, spoof)
    if name == "a_dcf":
        return a_dcf(sv[keys == "target"], sv[keys == "nontarget"], sv[keys == "spoof"])
    if name == "min_tdcf":
        return min_tdcf(cm[keys != "spoof"], cm[keys == "spoof"], asv_rates=ASV5_RATES, revised=True)
    return 100 * t_eer(cm, asv, keys)  # the fixture stores percent


@pytest.mark.parametrize("name", METRICS)
def test_official_reference(ref: dict[str, np.ndarray], name: str) -> None:
    """Every case equal to 1e-9: absolute for values up to 1, relative above (Cllr, t-EER in %)."""
    cases = sorted(int(k.rsplit("_", 1)[1]) for k in ref if k.startswith("cm_bona_"))
    assert len(cases) == 24
    wrong = []
    for i in cases:
        value, expected = _metric(ref, name, i), float(ref[f"{name}_{i}"])
        if not abs(value - expected) <= 1e-9 * max(1.0, abs(expected)):
            wrong.append(f"case {i}: {value!r} != {expected!r}")
    assert not wrong, f"{name}: " + "; ".join(wrong)


# --- min / act DCF, Cllr, min Cllr -----------------------------------------------------------------------


def test_min_dcf_hand_computed() -> None:
    # DET: FRR 0, 0, .5, .5, 1 / FAR 1, .5, .5, 0, 0; weights 0.95 (miss), 0.5 (false alarm).
    assert min_dcf([0.9, 0.4], [0.5, 0.1]) == pytest.approx(0.25 / 0.5)
    assert min_dcf([0.9, 0.4], [0.5, 0.1], p_spoof=0.5, c_miss=1, c_fa=1) == pytest.approx(0.5)


def test_act_dcf_threshold_and_inequalities() -> None:
    t = -np.log(1 * 0.95 / (10 * 0.05))
    # A bona fide LLR at the threshold is accepted, a spoof LLR at the threshold is a false alarm.
    assert act_dcf([t], [t]) == pytest.approx(0.5 / 0.5)
    assert act_dcf([np.nextafter(t, -np.inf)], [np.nextafter(t, -np.inf)]) == pytest.approx(0.95 / 0.5)
    assert act_dcf([1.0, -1.0], [-2.0, 0.0]) == pytest.approx((0.95 * 0.5 + 0.5 * 0.5) / 0.5)


def test_act_dcf_is_never_below_min_dcf() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        bona = np.round(rng.normal(rng.uniform(-2, 3), rng.uniform(0.5, 3), rng.integers(5, 300)), 1)
        spoof = np.round(rng.normal(rng.uniform(-3, 1), rng.uniform(0.5, 3), rng.integers(5, 300)), 1)
        assert act_dcf(bona, spoof) >= min_dcf(bona, spoof) - 1e-15


def test_act_dcf_of_calibrated_gaussian_llrs_is_near_min_dcf() -> None:
    # With equal-variance Gaussian classes of d' = 2 the LLR of score x is 2x, so LLRs are N(+-2, 2^2).
    rng = np.random.default_rng(1)
    bona, spoof = rng.normal(2, 2, 50_000), rng.normal(-2, 2, 50_000)
    gap = act_dcf(bona, spoof) - min_dcf(bona, spoof)
    assert 0 <= gap < 0.01
    assert act_dcf(bona + 3, spoof + 3) - min_dcf(bona + 3, spoof + 3) > 0.2  # shifted: miscalibrated
    assert min_dcf(bona + 3, spoof + 3) == min_dcf(bona, spoof)


def test_cllr_values_and_stability() -> None:
    assert cllr([0.0, 0.0], [0.0]) == pytest.approx(1.0)  # uninformative LLRs cost one bit
    assert cllr([50.0], [-50.0]) == pytest.approx(0.0, abs=1e-20)
    # Confidently wrong LLRs: log1p(exp(1000)) would overflow to inf; logaddexp stays exact.
    assert cllr([-1000.0], [1000.0]) == pytest.approx(1000 / np.log(2))
    assert cllr([1.0], [-1.0]) == pytest.approx(np.log1p(np.exp(-1.0)) / np.log(2))


def _pav_optimal_llrs() -> tuple[np.ndarray, np.ndarray]:
    # Bins of (bona fide, spoof) counts with strictly increasing bona fide shares: PAV merges nothing, so the
    # optimal LLR of each bin is its log count ratio minus the log prior odds, and trials in a bin are tied.
    bins = [(1, 4), (2, 3), (3, 3), (5, 1)]
    n_bona, n_spoof = sum(b for b, _ in bins), sum(s for _, s in bins)
    llr = [np.log(b / s) - np.log(n_bona / n_spoof) for b, s in bins]
    bona = np.concatenate([np.full(b, v) for (b, _), v in zip(bins, llr)])
    spoof = np.concatenate([np.full(s, v) for (_, s), v in zip(bins, llr)])
    return bona, spoof


def test_min_cllr_equals_cllr_for_pav_optimal_llrs() -> None:
    bona, spoof = _pav_optimal_llrs()
    assert min_cllr(bona, spoof) == pytest.approx(cllr(bona, spoof), abs=1e-12)
    assert min_cllr(bona, spoof) < cllr(bona + 0.5, spoof + 0.5)  # a shifted copy is no longer optimal
    assert min_cllr(np.exp(bona), np.exp(spoof)) == pytest.approx(cllr(bona, spoof), abs=1e-12)


def test_min_cllr_is_at_most_cllr_and_monotone_invariant() -> None:
    rng = np.random.default_rng(2)
    for case in range(20):
        bona = rng.normal(rng.uniform(-1, 4), rng.uniform(0.3, 3), rng.integers(3, 400))
        spoof = rng.normal(rng.uniform(-4, 1), rng.uniform(0.3, 3), rng.integers(3, 400))
        if case % 2:
            bona, spoof = np.round(bona), np.round(spoof)  # heavy ties
        low = min_cllr(bona, spoof)
        assert 0 <= low <= 1 + 1e-12
        assert low <= cllr(bona, spoof) + 1e-12
        assert min_cllr(3 * bona - 7, 3 * spoof - 7) == pytest.approx(low, abs=1e-12)
        assert min_cllr(np.tanh(bona), np.tanh(spoof)) == pytest.approx(low, abs=1e-12)


def test_pav_llrs_match_an_independent_isotonic_regression() -> None:
    from sklearn.isotonic import isotonic_regression

    rng = np.random.default_rng(3)
    bona, spoof = rng.integers(0, 30, 300).astype(float), rng.integers(-10, 20, 500).astype(float)
    values, bins = np.unique(np.concatenate((bona, spoof)), return_inverse=True)
    total = np.bincount(bins)
    share = np.bincount(bins[: bona.size], minlength=values.size) / total
    posterior = isotonic_regression(share, sample_weight=total, increasing=True)
    with np.errstate(divide="ignore"):
        expected = np.log(posterior) - np.log1p(-posterior) - np.log(bona.size / spoof.size)
    got_bona, got_spoof = pav_llrs(bona, spoof)
    np.testing.assert_allclose(np.concatenate((got_bona, got_spoof)), expected[bins], rtol=1e-9, atol=1e-9)


def test_pav_pools_tied_scores() -> None:
    # Score 1 holds two bona fide and one spoof: one bin, LLR log(2 / 1) - log(2 / 2); score 0 only a spoof.
    bona_llr, spoof_llr = pav_llrs([1.0, 1.0], [1.0, 0.0])
    np.testing.assert_allclose(bona_llr, [np.log(2), np.log(2)])
    np.testing.assert_allclose(spoof_llr, [np.log(2), -np.inf])
    # Bona fide below spoofs: everything pools into the prior, the LLR 0, whatever the order of ties.
    np.testing.assert_allclose(np.concatenate(pav_llrs([0.0, 1.0], [1.0, 2.0])), 0.0, atol=1e-15)
    assert min_cllr([3.0, 3.0], [3.0]) == pytest.approx(1.0)
    assert min_cllr([2.0, 3.0], [0.0, 1.0]) == 0.0


@pytest.mark.parametrize("fn", [min_dcf, act_dcf, cllr, min_cllr])
def test_track1_metrics_reject_bad_input(fn) -> None:
    with pytest.raises(ValueError, match="empty"):
        fn([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        fn([1.0, np.nan], [0.0])


def test_dcf_rejects_a_bad_operating_point() -> None:
    with pytest.raises(ValueError, match="p_spoof"):
        min_dcf([1.0], [0.0], p_spoof=1.0)
    with pytest.raises(ValueError, match="costs"):
        act_dcf([1.0], [0.0], c_fa=0)


# --- a-DCF ------------------------------------------------------------------------------------------------


def test_a_dcf_hand_computed() -> None:
    # Sorted: spoof 1, target 2, nontarget 3. Rejecting the spoof only leaves the nontarget accepted.
    assert a_dcf([2.0], [3.0], [1.0]) == pytest.approx(10 * 0.0095 / (10 * 0.0095 + 10 * 0.05))
    assert a_dcf([3.0, 4.0], [1.0], [2.0]) == 0.0


def test_a_dcf_ranks_targets_before_spoofs_among_ties() -> None:
    # Sorted: nontarget 0, then target, target, spoof at 1 (the stable order of kinds). Ranking the spoof
    # first would reject it before any target and give 0.
    assert a_dcf([1.0, 1.0], [0.0], [1.0]) == pytest.approx(10 * 0.05 / (10 * 0.0095 + 10 * 0.05))


def test_a_dcf_invariances_and_bounds() -> None:
    rng = np.random.default_rng(4)
    for case in range(10):
        tar = rng.normal(3, 1.5, rng.integers(5, 300))
        non = rng.normal(-1, 1.5, rng.integers(5, 300))
        spf = rng.normal(1, 2, rng.integers(5, 300))
        if case % 2:
            tar, non, spf = np.round(tar), np.round(non), np.round(spf)
        value = a_dcf(tar, non, spf)
        assert 0 <= value <= 1
        assert a_dcf(tar + 8, non + 8, spf + 8) == value
        assert a_dcf(np.exp(tar / 4), np.exp(non / 4), np.exp(spf / 4)) == value


def test_a_dcf_without_spoofs_is_the_asv_min_dcf() -> None:
    rng = np.random.default_rng(5)
    tar, non, spf = rng.normal(2, 1, 200), rng.normal(-1, 1, 300), rng.normal(0, 1, 100)
    p_tar, p_non = 0.95 * 0.99, 0.95 * 0.01
    expected = min_dcf(tar, non, p_spoof=p_non / (p_tar + p_non), c_miss=1, c_fa=10)
    assert a_dcf(tar, non, spf, p_spoof=0.0) == pytest.approx(expected, abs=1e-12)
    assert a_dcf(tar, non, spf, p_spoof=0.05, c_fa_cm=20) != a_dcf(tar, non, spf)


def test_a_dcf_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="spoof is empty"):
        a_dcf([1.0], [0.0], [])
    with pytest.raises(ValueError, match="NaN"):
        a_dcf([np.nan], [0.0], [0.0])


# --- min t-DCF with fixed ASV rates ----------------------------------------------------------------------


def _asv(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rng.normal(3, 1, 400), rng.normal(-2, 1, 800), rng.normal(1, 1.5, 300)


@pytest.mark.parametrize("revised", [False, True])
def test_min_tdcf_with_asv_rates_equals_the_asv_scores_behind_them(revised: bool) -> None:
    rng = np.random.default_rng(6)
    tar, non, spoof_asv = _asv(rng)
    bona_cm, spoof_cm = rng.normal(1, 1, 120), rng.normal(-1, 1, 150)
    pfa, pmiss, pmiss_spoof = asv_error_rates(tar, non, spoof_asv, compute_eer(tar, non)[1])
    rates = (pfa, pmiss, 1 - pmiss_spoof)
    from_scores = min_tdcf(bona_cm, spoof_cm, tar, non, spoof_asv, revised=revised)
    assert min_tdcf(bona_cm, spoof_cm, asv_rates=rates, revised=revised) == from_scores
    curve, thresholds = tdcf_curve(bona_cm, spoof_cm, asv_rates=rates, revised=revised)
    expected_curve, expected_thresholds = tdcf_curve(bona_cm, spoof_cm, tar, non, spoof_asv, revised=revised)
    np.testing.assert_array_equal(curve, expected_curve)
    np.testing.assert_array_equal(thresholds, expected_thresholds)


def test_min_tdcf_of_a_perfect_cm_with_the_asvspoof5_rates() -> None:
    pfa, pmiss, pfa_spoof = ASV5_RATES
    c0 = 0.95 * 0.99 * pmiss + 0.95 * 0.01 * 10 * pfa
    c1, c2 = 0.95 * 0.99 - c0, 0.05 * 10 * pfa_spoof
    got = min_tdcf([2.0, 3.0], [0.0, 1.0], asv_rates=ASV5_RATES, revised=True)
    assert got == pytest.approx(c0 / (c0 + min(c1, c2)), rel=1e-12)


def test_min_tdcf_needs_exactly_one_asv_source() -> None:
    rng = np.random.default_rng(7)
    tar, non, spoof_asv = _asv(rng)
    with pytest.raises(ValueError, match="not both"):
        min_tdcf([1.0, 2.0], [0.0], tar, non, spoof_asv, asv_rates=ASV5_RATES)
    with pytest.raises(ValueError, match="not both"):
        min_tdcf([1.0, 2.0], [0.0], asv_target=tar, asv_rates=ASV5_RATES)
    with pytest.raises(ValueError, match="or asv_rates"):
        min_tdcf([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="or asv_rates"):
        min_tdcf([1.0, 2.0], [0.0], tar, non)
    for bad in [(0.1, 0.1), (0.1, 0.1, 1.5), (0.1, np.nan, 0.4), (-0.1, 0.1, 0.4)]:
        with pytest.raises(ValueError, match="asv_rates must be"):
            min_tdcf([1.0, 2.0], [0.0], asv_rates=bad)


# --- t-EER ------------------------------------------------------------------------------------------------


def _literal_t_eer(cm: np.ndarray, asv: np.ndarray, labels: np.ndarray) -> float:
    """The README's definition, one ASV point at a time, on NumPy scalars (IEEE division)."""
    tar, non, spf = (labels == "target"), (labels == "nontarget"), (labels == "spoof")
    kind = np.concatenate((np.zeros(tar.sum()), np.ones(non.sum()), np.full(spf.sum(), 2)))
    kind = kind[np.argsort(np.concatenate((asv[tar], asv[non], asv[spf])), kind="mergesort")]
    pmiss = np.concatenate(([0.0], np.cumsum(kind == 0) / tar.sum()))
    pfa_non = np.concatenate(([1.0], 1 - np.cumsum(kind == 1) / non.sum()))
    pfa_spf = np.concatenate(([1.0], 1 - np.cumsum(kind == 2) / spf.sum()))
    bona_cm, spoof_cm = np.concatenate((cm[tar], cm[non])), cm[spf]
    order = np.argsort(np.concatenate((bona_cm, spoof_cm)), kind="mergesort")
    is_bona = np.concatenate((np.ones(bona_cm.size), np.zeros(spoof_cm.size)))[order]
    pmiss_cm = np.concatenate(([0.0], np.cumsum(is_bona) / bona_cm.size))
    pfa_cm = np.concatenate(
        ([1.0], (spoof_cm.size - (np.arange(1, order.size + 1) - np.cumsum(is_bona))) / spoof_cm.size)
    )
    best, value = np.inf, None
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(pmiss.size):
            pmiss_t = pmiss_cm + (1 - pmiss_cm) * pmiss[j]
            pfa_t = 0.5 * (1 - pmiss_cm) * pfa_non[j] + 0.5 * pfa_cm * pfa_spf[j]
            k = np.argmin(np.abs(pmiss_t - pfa_t))
            if pmiss[j] < 0.5 * pfa_non[j] + 0.5 * pfa_spf[j]:
                crit = abs(pfa_non[j] / pfa_spf[j] - pfa_cm[k] / (1 - pmiss_cm[k]))
                if crit < best:
                    best, value = crit, pfa_spf[j] * pfa_cm[k]
    assert value is not None
    return float(value)


def _trials(rng: np.random.Generator, n: int, mode: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = rng.choice(np.array(["target", "nontarget", "spoof"]), n, p=rng.dirichlet([3, 3, 3]) * 0.8 + 0.2 / 3)
    labels[:3] = ["target", "nontarget", "spoof"]
    spf, tar = labels == "spoof", labels == "target"
    asv_mean = np.where(tar, 2.0, np.where(spf, 0.5, -2.0))
    if mode == 0:  # continuous
        cm, asv = rng.normal(np.where(spf, -1.0, 1.0), 1.5), rng.normal(asv_mean, 1.0)
    elif mode == 1:  # heavily tied
        cm, asv = np.round(rng.normal(np.where(spf, -1.0, 1.0), 1.5)), np.round(rng.normal(asv_mean, 1.5))
    elif mode == 2:  # probability-like, many exact 0s and 1s
        cm = np.clip(rng.normal(np.where(spf, 0.2, 0.8), 0.5), 0, 1)
        asv = np.clip(rng.normal(np.where(tar, 0.8, np.where(spf, 0.5, 0.1)), 0.5), 0, 1)
    elif mode == 3:  # a perfect CM
        cm, asv = np.where(spf, rng.uniform(0, 1, n), rng.uniform(2, 3, n)), rng.normal(asv_mean, 1.0)
    elif mode == 4:  # spoofs far below nontargets on the ASV: Pfa_spoof = 0 at allowed points, criteria of inf
        cm = rng.normal(np.where(spf, -1.0, 1.0), 1.5)
        asv = np.round(rng.normal(np.where(tar, 1.0, np.where(spf, -4.0, 0.0)), 1.0))
    else:  # three score values: ASV points on the border Pmiss = (Pfa_non + Pfa_spoof) / 2
        cm, asv = rng.integers(0, 3, n).astype(float), rng.integers(0, 3, n).astype(float)
    return cm, asv, labels


def test_t_eer_follows_the_literal_definition() -> None:
    rng = np.random.default_rng(8)
    for case in range(150):  # the tiny three-valued cases last, many: the border is hit in one in ten
        mode = case % 5 if case < 50 else 5
        cm, asv, labels = _trials(rng, int(rng.integers(3, 12 if mode == 5 else 150)), mode)
        expected = _literal_t_eer(cm, asv, labels)
        assert t_eer(cm, asv, labels, search="exhaustive") == expected, f"case {case}"
        assert t_eer(cm, asv, labels, search="bisect") == expected, f"case {case}"


def test_t_eer_keeps_the_official_rounding() -> None:
    # Pfa_non as 1 - (1 / 3) and (3 - 1) / 3 differ by one ulp; here that ulp breaks a tie between the
    # intersection criteria of two ASV points, and the t-EER moves from 0.75 (official rounding) to 0.5.
    labels = np.array(["target", "nontarget", "spoof", "nontarget", "spoof", "spoof", "spoof", "nontarget", "target"])
    cm = np.array([1.0, 1.0, 1.0, 0.0, 2.0, 2.0, 1.0, 0.0, 0.0])
    asv = np.array([3.0, 1.0, 1.0, 3.0, 3.0, 1.0, 0.0, 3.0, 0.0])
    assert t_eer(cm, asv, labels) == _literal_t_eer(cm, asv, labels) == 0.75


def test_t_eer_bisection_equals_the_exhaustive_search_on_thousands_of_trials() -> None:
    rng = np.random.default_rng(9)
    for case in range(10):
        cm, asv, labels = _trials(rng, int(rng.integers(3000, 4500)), case % 5)
        exact = t_eer(cm, asv, labels, search="exhaustive")
        assert t_eer(cm, asv, labels, search="bisect") == exact, f"case {case}"
        assert t_eer(cm, asv, labels) == exact, f"case {case}"  # auto: bisects here


def test_t_eer_bisection_finds_the_exhaustive_cm_index_at_every_asv_point() -> None:
    # Stronger than equal t-EERs: also where flat runs of the tandem gap (Pfa_spoof = 0) hide the index.
    rng = np.random.default_rng(13)
    for case in range(12):
        cm, asv, labels = _trials(rng, int(rng.integers(3, 800)), case % 6)
        kind = np.select([labels == "target", labels == "nontarget"], [0, 1], 2)
        curves = sasv._three_curves(asv[kind == 0], asv[kind == 1], asv[kind == 2])
        pmiss_cm, pfa_cm, _ = compute_det_curve(np.concatenate((cm[kind == 0], cm[kind == 1])), cm[kind == 2])
        exhaustive = sasv._cm_index_exhaustive((pmiss_cm, pfa_cm), curves)
        np.testing.assert_array_equal(sasv._cm_index_bisect((pmiss_cm, pfa_cm), curves), exhaustive)


def test_t_eer_auto_switches_to_bisection_from_3000_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("exhaustive search used")

    cm, asv, labels = _trials(np.random.default_rng(10), 2999, 0)  # curves of 3,000 points
    expected = t_eer(cm, asv, labels, search="exhaustive")
    monkeypatch.setattr(sasv, "_cm_index_exhaustive", refuse)
    assert t_eer(cm, asv, labels) == expected
    with pytest.raises(AssertionError, match="exhaustive"):
        t_eer(cm[1:], asv[1:], labels[1:])


def test_t_eer_exhaustive_search_is_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    cm, asv, labels = _trials(np.random.default_rng(11), 400, 1)
    expected = t_eer(cm, asv, labels, search="exhaustive")
    monkeypatch.setattr(sasv, "_CHUNK", 1000)  # two ASV points per chunk, and a ragged last one
    assert t_eer(cm, asv, labels, search="exhaustive") == expected


def test_t_eer_invariances() -> None:
    rng = np.random.default_rng(12)
    for case in range(10):
        cm, asv, labels = _trials(rng, 300, case % 5)
        value = t_eer(cm, asv, labels)
        assert 0 <= value <= 1
        assert t_eer(cm + 4, asv - 16, labels) == value
        assert t_eer(np.exp(cm), np.arctan(asv), labels) == value
        order = rng.permutation(labels.size)
        assert t_eer(cm[order], asv[order], labels[order]) == value
        assert t_eer(cm, asv, np.char.upper(labels)) == value


def test_t_eer_of_perfect_systems_is_zero() -> None:
    labels = np.array(["target"] * 5 + ["nontarget"] * 6 + ["spoof"] * 7)
    cm = np.concatenate((np.full(11, 5.0), np.full(7, -5.0)))
    asv = np.concatenate((np.full(5, 3.0), np.full(6, -3.0), np.full(7, 3.0)))
    assert t_eer(cm, asv, labels) == 0.0


def test_t_eer_rejects_bad_input() -> None:
    labels = np.array(["target", "nontarget", "spoof"])
    with pytest.raises(ValueError, match="unknown labels \\['bonafide'\\]"):
        t_eer([1.0, 0.0, -1.0], [1.0, 0.0, 0.5], ["target", "bonafide", "spoof"])
    with pytest.raises(ValueError, match="empty"):
        t_eer([], [], [])
    with pytest.raises(ValueError, match="differ in length"):
        t_eer([1.0, 0.0], [1.0, 0.0, 0.5], labels)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        t_eer([1.0, 0.0, -1.0], [1.0, 0.0, 0.5], labels[:2])
    with pytest.raises(ValueError, match="no spoof trials"):
        t_eer([1.0, 0.0], [1.0, 0.0], ["target", "nontarget"])
    with pytest.raises(ValueError, match="NaN"):
        t_eer([1.0, np.nan, -1.0], [1.0, 0.0, 0.5], labels)
    with pytest.raises(ValueError, match="search must be"):
        t_eer([1.0, 0.0, -1.0], [1.0, 0.0, 0.5], labels, search="grid")
