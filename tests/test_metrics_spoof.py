"""Spoofing metrics against the official ASVspoof reference numbers, plus independent checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lcnn.metrics import (
    ASVSPOOF_COSTS,
    compute_det_curve,
    compute_eer,
    eer_table,
    format_table,
    min_tdcf,
    read_asv_scores,
    tdcf_curve,
)

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
REF = FIXTURES / "asvspoof_metrics_ref.npz"


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    if not REF.exists():
        pytest.skip(f"reference fixtures absent: {REF}")
    with np.load(REF) as data:
        return {k: data[k] for k in data.files}


def _cases(ref: dict[str, np.ndarray]) -> list[int]:
    cases = sorted(int(k.rsplit("_", 1)[1]) for k in ref if k.startswith("eer_thr_"))
    assert cases, "no cases in the reference file"
    return cases


def _close(value: float, expected: float) -> bool:
    return abs(value - expected) <= 1e-9 * max(1.0, abs(expected))


def test_official_reference(ref: dict[str, np.ndarray]) -> None:
    for i in _cases(ref):
        bona, spoof = ref[f"cm_bona_{i}"], ref[f"cm_spoof_{i}"]
        asv = ref[f"asv_tar_{i}"], ref[f"asv_non_{i}"], ref[f"asv_spoof_{i}"]
        eer, thr = compute_eer(bona, spoof)
        got = {
            "eer": eer,
            "eer_thr": thr,
            "min_tdcf_legacy": min_tdcf(bona, spoof, *asv),
            "min_tdcf_revised": min_tdcf(bona, spoof, *asv, revised=True),
        }
        for name, value in got.items():
            expected = float(ref[f"{name}_{i}"])
            assert _close(value, expected), f"case {i} {name}: {value!r} != {expected!r}"


def test_hand_computed_det_and_eer() -> None:
    # Sorted: 0.1 s, 0.4 b, 0.5 s, 0.9 b.
    frr, far, thr = compute_det_curve([0.9, 0.4], [0.5, 0.1])
    np.testing.assert_array_equal(frr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_array_equal(far, [1, 0.5, 0.5, 0, 0])
    np.testing.assert_allclose(thr, [0.099, 0.1, 0.4, 0.5, 0.9])
    assert compute_eer([0.9, 0.4], [0.5, 0.1]) == (0.5, 0.4)


def test_ties_are_not_grouped_and_bonafide_sorts_first() -> None:
    # All scores equal: the stable sort rejects the bona fide trial before the spoof ones.
    frr, far, _ = compute_det_curve([1.0], [1.0, 1.0])
    np.testing.assert_array_equal(frr, [0, 1, 1, 1])
    np.testing.assert_array_equal(far, [1, 1, 0.5, 0])
    assert compute_eer([1.0], [1.0, 1.0]) == (1.0, 1.0)  # first |FRR - FAR| = 0 point: FRR = FAR = 1


def test_perfect_separation_gives_zero_eer() -> None:
    eer, thr = compute_eer([2.0, 3.0, 4.0], [-1.0, 0.0, 1.0])
    assert eer == 0.0
    assert thr == 1.0  # the highest spoof: rejecting it and everything below


def test_fully_inverted_scores_give_eer_one() -> None:
    assert compute_eer([-1.0, 0.0], [2.0, 3.0])[0] == 1.0


def test_swapping_classes_with_negated_scores_keeps_eer() -> None:
    rng = np.random.default_rng(0)
    bona, spoof = rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 500)
    eer, _ = compute_eer(bona, spoof)
    swapped, _ = compute_eer(-spoof, -bona)
    assert swapped == pytest.approx(eer, abs=1 / 300)
    assert 0.1 < eer < 0.25  # d' = 2 gives about 16 %


def test_monotonic_transform_leaves_det_unchanged() -> None:
    rng = np.random.default_rng(1)
    bona, spoof = rng.integers(0, 20, 200) / 4, rng.integers(-10, 10, 300) / 4  # heavy ties
    frr, far, thr = compute_det_curve(bona, spoof)
    frr2, far2, thr2 = compute_det_curve(np.exp(bona), np.exp(spoof))
    np.testing.assert_array_equal(frr, frr2)
    np.testing.assert_array_equal(far, far2)
    np.testing.assert_allclose(np.exp(thr[1:]), thr2[1:])


def test_eer_agrees_with_sklearn_roc_on_continuous_scores() -> None:
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(2)
    bona, spoof = rng.normal(0.8, 1.0, 400), rng.normal(-0.5, 1.2, 700)
    scores = np.concatenate((bona, spoof))
    labels = np.concatenate((np.ones(bona.size), np.zeros(spoof.size)))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    k = np.argmin(np.abs((1 - tpr) - fpr))
    sk_eer = ((1 - tpr[k]) + fpr[k]) / 2
    assert compute_eer(bona, spoof)[0] == pytest.approx(sk_eer, abs=1 / bona.size)


def test_det_rejects_empty_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        compute_eer([], [1.0])


def _asv(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rng.normal(3, 1, 400), rng.normal(-2, 1, 800), rng.normal(1, 1.5, 300)


def test_tdcf_of_a_perfect_countermeasure() -> None:
    rng = np.random.default_rng(3)
    tar, non, spoof_asv = _asv(rng)
    bona_cm, spoof_cm = rng.uniform(2, 3, 50), rng.uniform(0, 1, 80)
    assert min_tdcf(bona_cm, spoof_cm, tar, non, spoof_asv) == 0.0
    # Revised: the floor is C0 / (C0 + min(C1, C2)), the cost of the ASV's own errors.
    _, thr = compute_eer(tar, non)
    c = ASVSPOOF_COSTS
    c0 = c.p_tar * c.c_miss * np.mean(tar < thr) + c.p_non * c.c_fa * np.mean(non >= thr)
    c1 = c.p_tar * c.c_miss - c0
    c2 = c.p_spoof * c.c_fa_spoof * np.mean(spoof_asv >= thr)
    expected = c0 / (c0 + min(c1, c2))
    assert 0 < expected < 1
    assert min_tdcf(bona_cm, spoof_cm, tar, non, spoof_asv, revised=True) == pytest.approx(expected, abs=1e-12)


def test_tdcf_curve_ends_are_the_default_systems() -> None:
    # Accept-all CM: t-DCF = C2 / min(C1, C2); reject-all: C1 / min(C1, C2). Both >= 1, and the min is <= 1.
    rng = np.random.default_rng(4)
    tar, non, spoof_asv = _asv(rng)
    bona_cm, spoof_cm = rng.normal(1, 1, 60), rng.normal(0, 1, 90)
    for revised in (False, True):
        curve, thresholds = tdcf_curve(bona_cm, spoof_cm, tar, non, spoof_asv, revised=revised)
        assert curve.shape == thresholds.shape == (151,)
        assert curve[0] >= 1 and curve[-1] >= 1
        assert min(curve[0], curve[-1]) == pytest.approx(1.0)
        assert curve.min() <= 1.0


def test_tdcf_raises_on_a_useless_asv() -> None:
    rng = np.random.default_rng(5)
    # ASV that accepts every spoof and every nontarget: C2 = Cfa_cm * Pspoof * 1, C1 < 0 in the legacy form.
    tar, non, spoof_asv = rng.normal(0, 1, 100), rng.normal(0, 1, 100) + 100, np.full(50, 1000.0)
    with pytest.raises(ValueError, match="t-DCF undefined"):
        min_tdcf([1.0, 2.0], [0.0], tar, non, spoof_asv)


def test_read_asv_scores(tmp_path: Path) -> None:
    path = tmp_path / "asv.txt"
    lines = ["bonafide target 3.5", "bonafide nontarget -2.25", "", "A09 spoof -3.9", "LA_0039 - target 2.3"]
    path.write_text("\n".join([*lines, "LA_0015 A13 spoof 0.5"]) + "\n")
    tar, non, spoof = read_asv_scores(path)
    np.testing.assert_array_equal(tar, [3.5, 2.3])
    np.testing.assert_array_equal(non, [-2.25])
    np.testing.assert_array_equal(spoof, [-3.9, 0.5])


@pytest.mark.parametrize(
    "bad",
    ["bonafide target", "bonafide impostor 1.0", "bonafide target abc", "a b c d e", "bonafide target nan"],
)
def test_read_asv_scores_names_file_and_line(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "asv.txt"
    path.write_text(f"bonafide target 1.0\n\n{bad}\nA09 spoof 0.0\n")
    with pytest.raises(ValueError, match=r"asv\.txt, line 3: "):
        read_asv_scores(path)


def test_eer_table_pooled_and_per_attack() -> None:
    scores = [0.9, 0.8, 0.7, 0.1, 0.2, 0.85, 0.3]
    keys = ["bonafide", "bonafide", "bonafide", "spoof", "spoof", "spoof", "spoof"]
    attacks = ["-", "-", "-", "A07", "A07", "A08", "A08"]
    table = eer_table(scores, keys, attacks)
    assert list(table["per_attack"]) == ["A07", "A08"]
    assert table["per_attack"]["A07"] == {"eer": 0.0, "threshold": 0.2, "n_bonafide": 3, "n_spoof": 2}
    assert table["per_attack"]["A08"]["eer"] == compute_eer([0.9, 0.8, 0.7], [0.85, 0.3])[0]
    assert table["pooled"]["eer"] == compute_eer([0.9, 0.8, 0.7], [0.1, 0.2, 0.85, 0.3])[0]
    assert table["pooled"]["n_spoof"] == 4
    json.dumps(table)  # plain Python types only
    # Boolean keys give the same table.
    assert eer_table(scores, [k == "bonafide" for k in keys], attacks) == table
    text = format_table(table)
    assert "A07" in text and "pooled" in text and f"{100 * table['pooled']['eer']:.3f}" in text


def test_eer_table_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        eer_table([0.1, 0.2], ["bonafide", "fake"], ["-", "A01"])


def test_plot_det_writes_png(tmp_path: Path) -> None:
    from lcnn.plots import plot_det

    rng = np.random.default_rng(6)
    frr, far, _ = compute_det_curve(rng.normal(1, 1, 200), rng.normal(-1, 1, 300))
    out = plot_det({"system": (frr, far), "perfect": ([0, 0, 1], [1, 0, 0])}, tmp_path / "sub" / "det.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["det.png"]  # no temporary file left over
