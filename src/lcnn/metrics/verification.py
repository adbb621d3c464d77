"""Face verification metrics over pair scores.

Convention: ``scores`` are similarities (higher = more likely the same identity), ``labels`` are 1 for
genuine (same identity) pairs and 0 for impostor pairs, and a pair is accepted when ``score >= threshold``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lcnn.metrics.spoof import compute_eer

__all__ = ["kfold_accuracy", "pairwise_eer", "roc_curve", "tar_at_far", "verification_eer"]


def _pairs(scores: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if s.size != y.size:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (impostor) or 1 (genuine)")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("need both genuine (1) and impostor (0) pairs")
    return s, y


def _best_threshold(scores: NDArray[np.float64], genuine: NDArray[np.bool_]) -> float:
    """Threshold maximising accuracy on these pairs (the lowest such one; midpoints between distinct scores)."""
    order = np.argsort(scores, kind="mergesort")
    s, g = scores[order], genuine[order]
    # Cut i accepts s[i:]: correct = impostors below the cut + genuine at or above it. Cuts only between distinct
    # scores (and at both ends), so tied scores always fall on the same side.
    impostors_below = np.concatenate(([0], np.cumsum(~g)))
    genuine_above = g.sum() - np.concatenate(([0], np.cumsum(g)))
    cuts = np.concatenate(([0], np.flatnonzero(s[1:] > s[:-1]) + 1, [s.size]))
    best = cuts[np.argmax((impostors_below + genuine_above)[cuts])]
    if best == 0:
        return float(s[0])
    if best == s.size:
        return float(np.nextafter(s[-1], np.inf))
    mid = (s[best - 1] + s[best]) / 2
    return float(mid if mid > s[best - 1] else s[best])


def kfold_accuracy(
    scores: ArrayLike, labels: ArrayLike, folds: int | ArrayLike = 10
) -> tuple[float, float, NDArray[np.float64]]:
    """K-fold verification accuracy (LFW protocol): for each fold, the threshold maximising accuracy on the
    other folds is applied to it.

    Args:
        scores: (N,) pair similarities. labels: (N,) 1 genuine / 0 impostor.
        folds: number of folds, each a contiguous block of pairs (LFW's ``pairs.txt`` lists its ten folds one
            after the other), or (N,) fold ids.

    Returns:
        ``(mean, std, thresholds)``: mean and population std of the per-fold accuracies, and the (K,) thresholds.
    """
    s, y = _pairs(scores, labels)
    if np.ndim(folds) == 0:
        k = int(folds)  # type: ignore[arg-type]
        if not 2 <= k <= s.size:
            raise ValueError(f"folds must be between 2 and the number of pairs ({s.size}), got {k}")
        fold_ids = np.repeat(np.arange(k), [len(b) for b in np.array_split(np.arange(s.size), k)])
    else:
        fold_ids = np.asarray(folds).ravel()
        if fold_ids.size != s.size:
            raise ValueError(f"fold ids and scores differ in length: {fold_ids.size} vs {s.size}")
    accuracies, thresholds = [], []
    for fold in np.unique(fold_ids):
        test = fold_ids == fold
        threshold = _best_threshold(s[~test], y[~test])
        accuracies.append(np.mean((s[test] >= threshold) == y[test]))
        thresholds.append(threshold)
    return float(np.mean(accuracies)), float(np.std(accuracies)), np.asarray(thresholds)


def verification_eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """EER of genuine vs impostor pairs, with the ASVspoof definition (see :func:`lcnn.metrics.compute_eer`).

    Returns:
        ``(eer, threshold)``.
    """
    s, y = _pairs(scores, labels)
    return compute_eer(s[y], s[~y])


def roc_curve(
    scores: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """ROC curve, one point per distinct score (tied scores grouped).

    Returns:
        ``(far, tar, thresholds)``, each (U + 1,) for U distinct scores: thresholds in decreasing order,
        starting at ``+inf`` (nothing accepted, far = tar = 0); ``far[i]`` and ``tar[i]`` are the fractions
        of impostor and genuine pairs with ``score >= thresholds[i]``. Both rates are non-decreasing.
    """
    s, y = _pairs(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.concatenate((np.flatnonzero(s[1:] < s[:-1]), [s.size - 1]))  # last index of each distinct score
    genuine_accepted = np.cumsum(y)[last]
    impostors_accepted = (last + 1) - genuine_accepted
    far = np.concatenate(([0.0], impostors_accepted / (~y).sum()))
    tar = np.concatenate(([0.0], genuine_accepted / y.sum()))
    return far, tar, np.concatenate(([np.inf], s[last]))


def tar_at_far(scores: ArrayLike, labels: ArrayLike, far: float | ArrayLike) -> float | NDArray[np.float64]:
    """True accept rate at the best operating point whose false accept rate is at most ``far``.

    Args:
        far: a target FAR in [0, 1], or an array of them (then an array of TARs is returned).
    """
    roc_far, roc_tar, _ = roc_curve(scores, labels)
    target = np.asarray(far, dtype=np.float64)
    if np.any((target < 0) | (target > 1)):
        raise ValueError(f"far must lie in [0, 1], got {far}")
    result = roc_tar[np.searchsorted(roc_far, target, side="right") - 1]
    return float(result) if result.ndim == 0 else result


def pairwise_eer(features: ArrayLike, identities: ArrayLike, limit: int = 3000) -> tuple[float, float] | None:
    """EER and its threshold of the cosine similarity over all pairs of embeddings.

    Args:
        features: (N, D) embeddings. identities: (N,) identity labels.
        limit: at most this many embeddings are paired (a fixed random sample beyond: N^2 / 2 pairs grow fast).

    Returns:
        ``(eer, threshold)``, or ``None`` without both genuine and impostor pairs.
    """
    f = np.asarray(features, dtype=np.float32)
    y = np.asarray(identities).ravel()
    if len(y) > limit:
        keep = np.sort(np.random.default_rng(0).permutation(len(y))[:limit])
        f, y = f[keep], y[keep]
    unit = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(y), k=1)
    same = y[i] == y[j]
    if not same.any() or same.all():
        return None
    return verification_eer((unit @ unit.T)[i, j], same.astype(int))
