"""ASVspoof 5 Track 2 metrics (spoofing-aware speaker verification): a-DCF and the concurrent tandem EER.

The numbers match the official ASVspoof 5 evaluation package (``a_dcf.py``, ``calculate_modules.py``). Trials
are of three kinds: ``target`` (bona fide, the claimed speaker), ``nontarget`` (bona fide, another speaker)
and ``spoof``. Within each curve, trials are sorted stably after being grouped by kind in that order, so
that equal scores rank targets before nontargets before spoofs, as in the official code. Higher scores mean
"accept" (ASV: same speaker; CM: bona fide; SASV: both).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lcnn.metrics.dcf import checked_scores
from lcnn.metrics.spoof import compute_det_curve

__all__ = ["TRIAL_KINDS", "a_dcf", "t_eer"]

TRIAL_KINDS = ("target", "nontarget", "spoof")

#: Both the CM and the ASV curve need this many points for ``t_eer(search="auto")`` to bisect, the size at
#: which the official package switches to its decimated search too.
BISECT_FROM = 3000

Curve = NDArray[np.float64]

# The exhaustive t-EER search holds at most this many tandem operating points in memory at a time.
_CHUNK = 1 << 20


def _three_curves(
    target: NDArray[np.float64], nontarget: NDArray[np.float64], spoof: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """``(pmiss, pfa_non, pfa_spoof)``, each (n + 1,): one point per sorted trial after the accept-all one."""
    kind = np.repeat(np.arange(3), (target.size, nontarget.size, spoof.size))
    kind = kind[np.argsort(np.concatenate((target, nontarget, spoof)), kind="mergesort")]
    pmiss = np.concatenate(([0.0], np.cumsum(kind == 0) / target.size))
    # 1 - (count / n) rather than (n - count) / n: the official rounding.
    pfa_non = np.concatenate(([1.0], 1 - np.cumsum(kind == 1) / nontarget.size))
    pfa_spoof = np.concatenate(([1.0], 1 - np.cumsum(kind == 2) / spoof.size))
    return pmiss, pfa_non, pfa_spoof


def a_dcf(
    target: ArrayLike,
    nontarget: ArrayLike,
    spoof: ArrayLike,
    *,
    p_target: float = 0.95 * 0.99,
    p_nontarget: float = 0.95 * 0.01,
    p_spoof: float = 0.05,
    c_miss: float = 1,
    c_fa_asv: float = 10,
    c_fa_cm: float = 10,
) -> float:
    """Minimum normalised architecture-agnostic DCF of a SASV system (Shim et al., Odyssey 2024).

    Args:
        target, nontarget, spoof: SASV scores of the three trial kinds, (n_tar,), (n_non,), (n_spf,).
        p_target, p_nontarget, p_spoof: priors of the three kinds (ASVspoof 5 Track 2 defaults).
        c_miss: cost of rejecting a target. c_fa_asv: of accepting a nontarget. c_fa_cm: of accepting a spoof.

    Returns:
        The minimum over the thresholds of the sorted scores (accept-all point included) of
        ``Cmiss Ptar Pmiss + Cfa_asv Pnon Pfa_non + Cfa_cm Pspf Pfa_spoof``, divided by the cost of the better
        trivial system, ``min(Cfa_asv Pnon + Cfa_cm Pspf, Cmiss Ptar)``; so in [0, 1]. Invariant to any
        increasing map of the scores.
    """
    tar, non = checked_scores(target, "target"), checked_scores(nontarget, "nontarget")
    spf = checked_scores(spoof, "spoof")
    if min(p_target, p_nontarget, p_spoof) < 0 or min(c_miss, c_fa_asv, c_fa_cm) <= 0:
        raise ValueError("priors must be non-negative and costs positive")
    pmiss, pfa_non, pfa_spoof = _three_curves(tar, non, spf)
    cost = c_miss * p_target * pmiss + c_fa_asv * p_nontarget * pfa_non + c_fa_cm * p_spoof * pfa_spoof
    return float(cost.min() / min(c_fa_asv * p_nontarget + c_fa_cm * p_spoof, c_miss * p_target))


def _kinds(labels: ArrayLike, n: int) -> NDArray[np.intp]:
    lab = np.char.lower(np.asarray(labels).astype(str).ravel())
    if lab.size != n:
        raise ValueError(f"labels has {lab.size} entries for {n} trials")
    unknown = set(np.unique(lab).tolist()) - set(TRIAL_KINDS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}, expected one of {', '.join(TRIAL_KINDS)}")
    kinds = np.select([lab == k for k in TRIAL_KINDS], [0, 1, 2])
    missing = [k for i, k in enumerate(TRIAL_KINDS) if not np.any(kinds == i)]
    if missing:
        raise ValueError(f"no {' / '.join(missing)} trials: the t-EER needs all three kinds")
    return kinds


def _tandem_gap(
    pmiss_cm: NDArray[np.float64],
    pfa_cm: NDArray[np.float64],
    pmiss: NDArray[np.float64],
    pfa_non: NDArray[np.float64],
    pfa_spoof: NDArray[np.float64],
) -> NDArray[np.float64]:
    """``Pmiss_tandem - Pfa_tandem`` (rho = 0.5) for aligned CM and ASV points, with the official rounding."""
    pmiss_t = pmiss_cm + (1 - pmiss_cm) * pmiss
    pfa_t = 0.5 * (1 - pmiss_cm) * pfa_non + 0.5 * pfa_cm * pfa_spoof
    return pmiss_t - pfa_t


def _first_at_least(value: NDArray[np.float64], cm: tuple[Curve, Curve], asv: tuple[Curve, ...]) -> NDArray[np.intp]:
    """Per ASV point, the first CM index whose tandem gap is ``>= value`` (CM size if none), by bisection."""
    n = cm[0].size
    lo = np.zeros(value.size, dtype=np.intp)
    hi = np.full(value.size, n, dtype=np.intp)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = np.minimum((lo + hi) // 2, n - 1)  # finished entries may sit at n
        ok = _tandem_gap(cm[0][mid], cm[1][mid], *asv) >= value
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)


def _cm_index_bisect(cm: tuple[Curve, Curve], asv: tuple[Curve, ...]) -> NDArray[np.intp]:
    """First argmin over the CM points of ``|tandem gap|`` per ASV point, using that the gap rises along the CM."""
    n = cm[0].size
    m = asv[0].size

    def gap(k: NDArray[np.intp]) -> NDArray[np.float64]:
        return _tandem_gap(cm[0][k], cm[1][k], *asv)

    p = _first_at_least(np.zeros(m), cm, asv)  # the sign change: gap[p - 1] < 0 <= gap[p]
    left = np.maximum(p - 1, 0)
    below = gap(left)  # the negative gap closest to zero (meaningless where p == 0)
    above = gap(np.minimum(p, n - 1))
    use_left = (p == n) | ((p > 0) & (np.abs(below) <= above))
    # Where the gap is flat, the first argmin is the start of the run of equal gaps, which may lie far left.
    start = _first_at_least(below, cm, asv)
    return np.where(use_left, start, p)


def _cm_index_exhaustive(cm: tuple[Curve, Curve], asv: tuple[Curve, ...]) -> NDArray[np.intp]:
    """First argmin over the CM points of ``|tandem gap|`` per ASV point, all pairs, in bounded chunks."""
    n, m = cm[0].size, asv[0].size
    rows = max(1, _CHUNK // n)
    k = np.empty(m, dtype=np.intp)
    for start in range(0, m, rows):
        sl = slice(start, start + rows)
        block = _tandem_gap(cm[0], cm[1], *(a[sl, None] for a in asv))
        k[sl] = np.argmin(np.abs(block), axis=1)
    return k


def t_eer(cm_scores: ArrayLike, asv_scores: ArrayLike, labels: ArrayLike, *, search: str = "auto") -> float:
    """Concurrent tandem equal error rate of a CM and an ASV system (Kinnunen et al., IEEE TPAMI 2023).

    ASV curves (``Pmiss``, ``Pfa_non``, ``Pfa_spoof``) come from the ASV scores of the three trial kinds, the CM
    DET curve from the CM scores (bona fide = target and nontarget trials). For each ASV point ``j`` the CM point
    ``k`` is the first argmin of ``|Pmiss_tandem - Pfa_tandem|`` at spoof prevalence 0.5. Among the ASV points
    with ``Pmiss[j] < (Pfa_non[j] + Pfa_spoof[j]) / 2``, the one whose ``|Pfa_non[j] / Pfa_spoof[j] -
    Pfa_cm[k] / (1 - Pmiss_cm[k])|`` is smallest (first one on ties; IEEE division: ``x / 0 = inf``,
    ``0 / 0 = NaN``, and NaN or inf never wins) gives ``t-EER = Pfa_spoof[j] Pfa_cm[k]``.

    Args:
        cm_scores: (n,) CM scores per trial. asv_scores: (n,) ASV scores per trial.
        labels: (n,) ``"target"`` / ``"nontarget"`` / ``"spoof"`` per trial (case-insensitive).
        search: how ``k`` is found for each ``j``. ``"exhaustive"`` tries every CM point, ``O(n^2)`` time,
            memory bounded by chunks of ASV points. ``"bisect"`` is a coarse-to-fine search, ``O(n log n)``:
            the tandem gap ``Pmiss_tandem - Pfa_tandem`` never decreases along the CM curve, so bisection finds
            the sign change and then the start of the run of equal gaps. In double precision the computed gap
            is monotone as long as ``n_bonafide * n_target`` stays below about ``1e14`` (every CM step then
            moves it by more than its rounding error), so it returns the same index, and the same t-EER, as
            the exhaustive search; tests check this on random, tied and probability-like cases. ``"auto"``
            bisects when both curves have at least 3,000 points, as the official package switches to its
            (approximate) decimated grid there.

    Returns:
        The t-EER as a fraction (the official package prints percent). It is always defined: the accept-all
        ASV point qualifies, and its CM point never rejects every bona fide trial, so its criterion is finite.

    Raises:
        ValueError: on empty or misaligned inputs, NaN scores, unknown labels or a missing trial kind.
    """
    cm = checked_scores(cm_scores, "cm_scores")
    asv = checked_scores(asv_scores, "asv_scores")
    if cm.size != asv.size:
        raise ValueError(f"cm_scores and asv_scores differ in length: {cm.size}, {asv.size}")
    if search not in ("auto", "exhaustive", "bisect"):
        raise ValueError(f"search must be 'auto', 'exhaustive' or 'bisect', got {search!r}")
    kinds = _kinds(labels, cm.size)
    tar, non, spf = (kinds == 0), (kinds == 1), (kinds == 2)

    pmiss, pfa_non, pfa_spoof = _three_curves(asv[tar], asv[non], asv[spf])
    pmiss_cm, pfa_cm, _ = compute_det_curve(np.concatenate((cm[tar], cm[non])), cm[spf])

    allowed = np.flatnonzero(pmiss < 0.5 * pfa_non + 0.5 * pfa_spoof)
    curves = (pmiss[allowed], pfa_non[allowed], pfa_spoof[allowed])
    if search == "auto":
        search = "bisect" if min(pmiss.size, pmiss_cm.size) >= BISECT_FROM else "exhaustive"
    finder = _cm_index_bisect if search == "bisect" else _cm_index_exhaustive
    k = finder((pmiss_cm, pfa_cm), curves)

    with np.errstate(divide="ignore", invalid="ignore"):
        crit = np.abs(curves[1] / curves[2] - pfa_cm[k] / (1 - pmiss_cm[k]))
    wins = np.flatnonzero(crit < np.inf)  # NaN compares false
    best = wins[np.argmin(crit[wins])]  # argmin returns the first of equal minima
    return float(curves[2][best] * pfa_cm[k[best]])
