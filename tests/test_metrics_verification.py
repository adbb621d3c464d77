"""Face verification metrics: k-fold accuracy, EER, ROC and TAR@FAR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcnn.metrics import compute_eer, kfold_accuracy, roc_curve, tar_at_far, verification_eer


def _pairs(n: int = 600, gap: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    scores = rng.normal(0.0, 1.0, n) + gap * labels
    return scores, labels


def test_kfold_accuracy_on_separable_pairs_is_one() -> None:
    labels = np.tile([1, 0], 300)
    scores = np.where(labels == 1, 0.6, 0.1) + np.random.default_rng(0).uniform(0, 0.3, labels.size)
    mean, std, thresholds = kfold_accuracy(scores, labels)
    assert (mean, std) == (1.0, 0.0)
    assert thresholds.shape == (10,)
    assert np.all((thresholds > 0.4) & (thresholds <= 0.6))  # inside the gap between the classes


def test_kfold_accuracy_hand_computed() -> None:
    # Two folds. Training on fold 1 (scores 0.5 impostor, 0.7 genuine) picks 0.6; on fold 0 picks 0.3.
    scores = [0.2, 0.4, 0.5, 0.7]
    labels = [0, 1, 0, 1]
    mean, std, thresholds = kfold_accuracy(scores, labels, folds=[0, 0, 1, 1])
    np.testing.assert_allclose(thresholds, [0.6, 0.3])
    # Fold 0 at 0.6: 0.2 rejected (right), 0.4 rejected (wrong) -> 0.5. Fold 1 at 0.3: both accepted -> 0.5.
    assert (mean, std) == (0.5, 0.0)


def test_kfold_accuracy_matches_a_brute_force_threshold_search() -> None:
    scores, labels = _pairs(n=200, seed=1)
    scores = np.round(scores, 1)  # ties
    mean, _, thresholds = kfold_accuracy(scores, labels, folds=5)
    fold_ids = np.repeat(np.arange(5), 40)
    accuracies = []
    for k, thr in enumerate(thresholds):
        train, test = fold_ids != k, fold_ids == k
        candidates = np.concatenate((np.unique(scores), [np.inf]))
        best = max(np.mean((scores[train] >= t) == labels[train]) for t in candidates)
        assert np.mean((scores[train] >= thr) == labels[train]) == best
        accuracies.append(np.mean((scores[test] >= thr) == labels[test]))
    assert mean == pytest.approx(np.mean(accuracies))
    assert 0.6 < mean < 0.8  # d' = 1


def test_kfold_accuracy_validates_folds() -> None:
    scores, labels = _pairs(n=20)
    with pytest.raises(ValueError, match=r"folds must be between 2 and the number of pairs \(20\), got 1"):
        kfold_accuracy(scores, labels, folds=1)
    with pytest.raises(ValueError, match="fold ids and scores differ in length: 2 vs 20"):
        kfold_accuracy(scores, labels, folds=[0, 1])


def test_verification_eer_is_spoof_eer_with_genuine_as_bonafide() -> None:
    scores, labels = _pairs(seed=2)
    # the wrapper's one rule, which class is the positive one: equal to compute_eer by construction, kept as
    # the statement of that rule; the hand cases below are the independent check
    assert verification_eer(scores, labels) == compute_eer(scores[labels == 1], scores[labels == 0])
    assert verification_eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])[0] == 0.0
    # genuine 0.9, 0.6, 0.3 and impostors 0.7, 0.2, 0.1: one of three on the wrong side each way -> 1/3;
    # read the other way round (impostors as the high class) 2/3
    mixed = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1]
    assert verification_eer(mixed, [1, 1, 1, 0, 0, 0])[0] == pytest.approx(1 / 3)
    assert verification_eer(mixed, [0, 0, 0, 1, 1, 1])[0] == pytest.approx(2 / 3)


def test_roc_curve_groups_ties() -> None:
    far, tar, thresholds = roc_curve([0.9, 0.5, 0.5, 0.1, 0.5], [1, 1, 0, 0, 0])
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.5, 0.1])
    np.testing.assert_array_equal(tar, [0, 0.5, 1, 1])
    np.testing.assert_allclose(far, [0, 0, 2 / 3, 1])


def test_roc_curve_agrees_with_sklearn() -> None:
    from sklearn.metrics import roc_curve as sk_roc_curve

    scores, labels = _pairs(n=300, seed=3)
    scores = np.round(scores, 1)
    far, tar, thresholds = roc_curve(scores, labels)
    sk_far, sk_tar, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, sk_far)
    np.testing.assert_allclose(tar, sk_tar)
    np.testing.assert_array_equal(thresholds[1:], sk_thr[1:])


def test_tar_at_far_known_case() -> None:
    # Genuine 0.95, 0.9, 0.6, 0.3; impostors 0.8, 0.5, 0.4, 0.2, 0.1 (FAR steps of 0.2).
    scores = [0.95, 0.9, 0.6, 0.3, 0.8, 0.5, 0.4, 0.2, 0.1]
    labels = [1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert tar_at_far(scores, labels, 0.0) == 0.5  # threshold 0.9
    assert tar_at_far(scores, labels, 0.1) == 0.5
    assert tar_at_far(scores, labels, 0.2) == 0.75  # threshold 0.6, impostor 0.8 accepted
    assert tar_at_far(scores, labels, 0.6) == 1.0  # threshold 0.3
    np.testing.assert_array_equal(tar_at_far(scores, labels, [0.0, 0.2, 1.0]), [0.5, 0.75, 1.0])
    with pytest.raises(ValueError, match=r"far must lie in \[0, 1\], got 1.5"):
        tar_at_far(scores, labels, 1.5)


def test_labels_are_validated() -> None:
    with pytest.raises(ValueError, match="both"):
        roc_curve([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="0 \\(impostor\\) or 1"):
        verification_eer([0.1, 0.2], [1, 2])


def test_plot_roc_writes_png(tmp_path: Path) -> None:
    from lcnn.plots import plot_roc

    far, tar, _ = roc_curve(*_pairs(seed=4))
    out = plot_roc(far, tar, tmp_path / "roc.png", label="model")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]
