"""ASVspoof 5 Track 1 metrics: minimum and actual detection cost (DCF), Cllr and minimum Cllr.

The numbers match the official ASVspoof 5 evaluation package (``calculate_modules.py``):

- min DCF is the minimum over the DET points of :func:`lcnn.metrics.compute_det_curve` (stable sort, no tie
  grouping) of ``Cmiss (1 - Pspoof) FRR + Cfa Pspoof FAR``, normalised by the cost of the better of the two
  trivial systems, ``min(Cmiss (1 - Pspoof), Cfa Pspoof)``.
- act DCF reads the scores as log-likelihood ratios and decides at the Bayes threshold
  ``t = -log(Cmiss (1 - Pspoof) / (Cfa Pspoof))``: bona fide is rejected when ``score < t``, a spoof is
  accepted when ``score >= t``.
- Cllr is the cross-entropy of the LLRs at prior 0.5, in bits.

Convention: bona fide is the positive class and higher scores mean "more bona fide".
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lcnn.metrics.spoof import compute_det_curve

__all__ = ["act_dcf", "bayes_threshold", "cllr", "min_cllr", "min_dcf", "pav_llrs"]


def checked_scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """``x`` as a flat float64 array; a ValueError naming it when it is empty or holds NaN."""
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(a).any():
        raise ValueError(f"{name} contains NaN")
    return a


def _dcf_weights(p_spoof: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    """``(Cmiss (1 - Pspoof), Cfa Pspoof)``: the weights of the miss and false-alarm rates."""
    if not 0 < p_spoof < 1:
        raise ValueError(f"p_spoof must be in (0, 1), got {p_spoof!r}")
    if not (c_miss > 0 and c_fa > 0):
        raise ValueError(f"costs must be positive, got c_miss={c_miss!r}, c_fa={c_fa!r}")
    return c_miss * (1 - p_spoof), c_fa * p_spoof


def bayes_threshold(p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10) -> float:
    """The Bayes decision threshold of LLRs at an operating point: ``-log(Cmiss (1 - Pspoof) / (Cfa Pspoof))``;
    an LLR at or above it is decided bona fide (as :func:`act_dcf` decides)."""
    _dcf_weights(p_spoof, c_miss, c_fa)  # the same refusals as the metrics
    return float(-np.log(c_miss * (1 - p_spoof) / (c_fa * p_spoof)))


def min_dcf(bonafide: ArrayLike, spoof: ArrayLike, p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10) -> float:
    """Minimum normalised detection cost over all DET thresholds (ASVspoof 5 Track 1).

    Args:
        bonafide: (N,) scores of bona fide trials. spoof: (M,) scores of spoofed trials.
        p_spoof: prior of a spoofing attack. c_miss: cost of rejecting bona fide. c_fa: cost of accepting a spoof.

    Returns:
        The minimum of ``Cmiss (1 - Pspoof) FRR + Cfa Pspoof FAR`` over the DET points, divided by
        ``min(Cmiss (1 - Pspoof), Cfa Pspoof)``; in [0, 1]. Invariant to any increasing map of the scores.
    """
    w_miss, w_fa = _dcf_weights(p_spoof, c_miss, c_fa)
    frr, far, _ = compute_det_curve(checked_scores(bonafide, "bonafide"), checked_scores(spoof, "spoof"))
    return float(np.min(w_miss * frr + w_fa * far) / min(w_miss, w_fa))


def act_dcf(bonafide: ArrayLike, spoof: ArrayLike, p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10) -> float:
    """Actual normalised detection cost of LLR scores at the Bayes threshold (ASVspoof 5 Track 1).

    Args:
        bonafide: (N,) LLRs of bona fide trials. spoof: (M,) LLRs of spoofed trials.
        p_spoof, c_miss, c_fa: the operating point, as in :func:`min_dcf`.

    Returns:
        The cost at ``t = -log(beta)``, ``beta = Cmiss (1 - Pspoof) / (Cfa Pspoof)`` (miss: bona fide
        ``< t``; false alarm: spoof ``>= t``), with the normaliser of :func:`min_dcf`. Always ``>= min_dcf``
        (the threshold is one of the DET points); the gap measures miscalibration at this operating point.
    """
    w_miss, w_fa = _dcf_weights(p_spoof, c_miss, c_fa)
    bona, spf = checked_scores(bonafide, "bonafide"), checked_scores(spoof, "spoof")
    threshold = bayes_threshold(p_spoof, c_miss, c_fa)
    cost = w_miss * np.mean(bona < threshold) + w_fa * np.mean(spf >= threshold)
    return float(cost / min(w_miss, w_fa))


def cllr(bonafide: ArrayLike, spoof: ArrayLike) -> float:
    """Log-likelihood-ratio cost: ``0.5 (mean(log(1 + e^-b)) + mean(log(1 + e^s))) / log 2``.

    Args:
        bonafide: (N,) LLRs ``b`` of bona fide trials. spoof: (M,) LLRs ``s`` of spoofed trials; natural log.

    Returns:
        Cllr in bits: 0 for a perfect, infinitely confident system, 1 for the uninformative LLR 0, unbounded
        above for confidently wrong LLRs. ``np.logaddexp`` keeps it finite for any finite LLR.
    """
    bona, spf = checked_scores(bonafide, "bonafide"), checked_scores(spoof, "spoof")
    return float(0.5 * (np.mean(np.logaddexp(0, -bona)) + np.mean(np.logaddexp(0, spf))) / np.log(2))


def pav_llrs(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Optimally calibrated LLRs by pool-adjacent-violators (BOSARIS ``opt_loglr``).

    The trials are sorted by score; the isotonic (non-decreasing) regression of the labels (1 = bona fide)
    gives the posterior of bona fide at the empirical prior; its log-odds minus ``log(N / M)`` is the LLR.
    It is the best non-decreasing map of the scores for every prior and cost at once, on these trials.

    Ties: trials with equal scores form one bin and always get the same LLR. (This is what BOSARIS's sort
    gives too: with bona fide ranked below spoofs among equal scores, PAV always pools the whole tie.)

    Args:
        bonafide: (N,) scores of bona fide trials. spoof: (M,) scores of spoofed trials.

    Returns:
        ``(bonafide_llrs, spoof_llrs)``, aligned with the inputs; ``+inf`` / ``-inf`` where a pooled block
        holds only bona fide / only spoof trials.
    """
    bona, spf = checked_scores(bonafide, "bonafide"), checked_scores(spoof, "spoof")
    values, bins = np.unique(np.concatenate((bona, spf)), return_inverse=True)
    n_bins = values.size
    total = np.bincount(bins, minlength=n_bins).astype(np.float64)
    positive = np.bincount(bins[: bona.size], minlength=n_bins).astype(np.float64)

    # Stack of blocks (positives, total, number of bins); a new bin merges backwards while it would make the
    # block means decrease. Block means are compared as cross products to stay exact on counts.
    block_pos: list[float] = []
    block_tot: list[float] = []
    block_len: list[int] = []
    for p, t in zip(positive.tolist(), total.tolist()):
        length = 1
        while block_pos and block_pos[-1] * t >= p * block_tot[-1]:
            p += block_pos.pop()
            t += block_tot.pop()
            length += block_len.pop()
        block_pos.append(p)
        block_tot.append(t)
        block_len.append(length)
    pos = np.repeat(block_pos, block_len)
    neg = np.repeat(block_tot, block_len) - pos
    with np.errstate(divide="ignore"):
        llr = np.log(pos) - np.log(neg) - np.log(bona.size / spf.size)
    per_trial = llr[bins]
    return per_trial[: bona.size], per_trial[bona.size :]


def min_cllr(bonafide: ArrayLike, spoof: ArrayLike) -> float:
    """Cllr of the optimally calibrated scores (:func:`pav_llrs`): the discrimination part of Cllr.

    Args:
        bonafide: (N,) scores of bona fide trials. spoof: (M,) scores of spoofed trials.

    Returns:
        ``cllr(*pav_llrs(bonafide, spoof))`` in bits, in [0, 1], ``<= cllr(bonafide, spoof)``, invariant to
        any increasing map of the scores; ``cllr - min_cllr`` is the calibration loss.
    """
    return cllr(*pav_llrs(bonafide, spoof))
