"""Spoofing-countermeasure metrics: DET curve, EER and the tandem detection cost function (t-DCF).

The numbers match the official ASVspoof ``eval_metrics.py`` (2019) and ``eval_metric_LA.py`` (2021) exactly:

- DET points come from a stable (mergesort) sort of all scores, bona fide first, with one point per trial
  and no grouping of tied scores; point ``k`` rejects the ``k`` lowest-ranked trials.
- EER is the mean of FRR and FAR at the first point minimising ``|FRR - FAR|``.
- The ASV system of the t-DCF operates at the EER threshold of its target vs nontarget scores; a trial is
  accepted when ``score >= threshold``.

Convention: higher countermeasure scores mean "more bona fide".
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lcnn.errors import DataError
from lcnn.io import read_text

__all__ = [
    "ASVSPOOF_COSTS",
    "CostModel",
    "asv_error_rates",
    "compute_det_curve",
    "compute_eer",
    "eer_table",
    "format_table",
    "min_tdcf",
    "read_asv_scores",
    "split_metrics",
    "tdcf_curve",
]

ASV_KEYS = ("target", "nontarget", "spoof")


@dataclass(frozen=True)
class CostModel:
    """Priors and costs of the t-DCF (ASVspoof 2019 evaluation plan; ASVspoof 2021 for the revised terms).

    Attributes:
        p_spoof: prior of a spoofing attack.
        p_tar: prior of a target (genuine) speaker.
        p_non: prior of a nontarget (zero-effort impostor) speaker.
        c_miss_asv, c_fa_asv: ASV miss / false-alarm costs (legacy 2019 t-DCF).
        c_miss_cm, c_fa_cm: CM miss (bona fide rejected) / false-alarm (spoof accepted) costs (legacy).
        c_miss, c_fa, c_fa_spoof: miss, nontarget false-alarm and spoof false-alarm costs (revised 2021 t-DCF).
    """

    p_spoof: float = 0.05
    p_tar: float = (1 - 0.05) * 0.99
    p_non: float = (1 - 0.05) * 0.01
    c_miss_asv: float = 1.0
    c_fa_asv: float = 10.0
    c_miss_cm: float = 1.0
    c_fa_cm: float = 10.0
    c_miss: float = 1.0
    c_fa: float = 10.0
    c_fa_spoof: float = 10.0


#: The cost model of the ASVspoof 2019 and 2021 challenges (both t-DCF flavours).
ASVSPOOF_COSTS = CostModel()


def _scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    return a


def compute_det_curve(
    bonafide_scores: ArrayLike, spoof_scores: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """DET curve of a detector, one point per trial (official ASVspoof definition).

    Args:
        bonafide_scores: (N,) scores of the positive class (bona fide speech, target trials).
        spoof_scores: (M,) scores of the negative class (spoofs, nontarget trials).

    Returns:
        ``(frr, far, thresholds)``, each (N + M + 1,). Point 0 accepts everything (``frr = 0``, ``far = 1``,
        threshold = lowest score - 0.001); point ``k >= 1`` rejects the ``k`` lowest trials of a stable sort,
        bona fide trials ranked before spoofs among equal scores, and its threshold is the ``k``-th lowest
        score. FRR is non-decreasing and FAR non-increasing along the curve.
    """
    bona = _scores(bonafide_scores, "bonafide_scores")
    spoof = _scores(spoof_scores, "spoof_scores")
    all_scores = np.concatenate((bona, spoof))
    labels = np.concatenate((np.ones(bona.size), np.zeros(spoof.size)))
    order = np.argsort(all_scores, kind="mergesort")
    bona_rejected = np.cumsum(labels[order])
    spoof_accepted = spoof.size - (np.arange(1, all_scores.size + 1) - bona_rejected)
    frr = np.concatenate(([0.0], bona_rejected / bona.size))
    far = np.concatenate(([1.0], spoof_accepted / spoof.size))
    thresholds = np.concatenate(([all_scores[order[0]] - 0.001], all_scores[order]))
    return frr, far, thresholds


def compute_eer(bonafide: ArrayLike, spoof: ArrayLike) -> tuple[float, float]:
    """Equal error rate: ``mean(FRR, FAR)`` at the first DET point minimising ``|FRR - FAR|``.

    Args:
        bonafide: (N,) positive-class scores. spoof: (M,) negative-class scores.

    Returns:
        ``(eer, threshold)``: EER as a fraction in [0, 1] and the DET threshold where it is reached.
    """
    frr, far, thresholds = compute_det_curve(bonafide, spoof)
    k = int(np.argmin(np.abs(frr - far)))
    return float(np.mean((frr[k], far[k]))), float(thresholds[k])


def asv_error_rates(
    asv_target: ArrayLike, asv_nontarget: ArrayLike, asv_spoof: ArrayLike, threshold: float
) -> tuple[float, float, float]:
    """ASV error rates at ``threshold`` (accept when ``score >= threshold``).

    Returns:
        ``(pfa_asv, pmiss_asv, pmiss_spoof_asv)``: nontargets accepted, targets rejected, spoofs rejected.
    """
    tar = _scores(asv_target, "asv_target")
    non = _scores(asv_nontarget, "asv_nontarget")
    spoof = _scores(asv_spoof, "asv_spoof")
    return float(np.mean(non >= threshold)), float(np.mean(tar < threshold)), float(np.mean(spoof < threshold))


def _resolve_asv_rates(
    asv_target: ArrayLike | None,
    asv_nontarget: ArrayLike | None,
    asv_spoof: ArrayLike | None,
    asv_rates: Sequence[float] | None,
) -> tuple[float, float, float]:
    """``(pfa_asv, pmiss_asv, pfa_spoof_asv)`` from either the ASV scores or fixed rates, never both."""
    given = [x is not None for x in (asv_target, asv_nontarget, asv_spoof)]
    if asv_rates is None:
        if not all(given):
            raise ValueError("pass the ASV scores (asv_target, asv_nontarget, asv_spoof) or asv_rates")
        _, asv_threshold = compute_eer(asv_target, asv_nontarget)  # type: ignore[arg-type]
        pfa_asv, pmiss_asv, pmiss_spoof_asv = asv_error_rates(
            asv_target, asv_nontarget, asv_spoof, asv_threshold  # type: ignore[arg-type]
        )
        return pfa_asv, pmiss_asv, 1 - pmiss_spoof_asv
    if any(given):
        raise ValueError("pass either the ASV scores or asv_rates, not both")
    rates = np.asarray(asv_rates, dtype=np.float64)
    if rates.shape != (3,) or not np.all((rates >= 0) & (rates <= 1)):
        raise ValueError(
            f"asv_rates must be three rates in [0, 1] (pfa_asv, pmiss_asv, pfa_spoof_asv), got {asv_rates!r}"
        )
    return float(rates[0]), float(rates[1]), float(rates[2])


def tdcf_curve(
    bona_cm: ArrayLike,
    spoof_cm: ArrayLike,
    asv_target: ArrayLike | None = None,
    asv_nontarget: ArrayLike | None = None,
    asv_spoof: ArrayLike | None = None,
    revised: bool = False,
    costs: CostModel = ASVSPOOF_COSTS,
    *,
    asv_rates: Sequence[float] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalised t-DCF at every CM threshold of the DET curve.

    The ASV system enters through three error rates, taken either from its scores or fixed (``asv_rates``).

    Args:
        bona_cm: (N,) CM scores of bona fide trials. spoof_cm: (M,) CM scores of spoofed trials.
        asv_target, asv_nontarget, asv_spoof: ASV scores of the three trial kinds; the ASV threshold is the
            EER threshold of ``asv_target`` vs ``asv_nontarget``.
        revised: False for the ASVspoof 2019 ("legacy") t-DCF, True for the revised ASVspoof 2021 t-DCF.
        costs: priors and costs.
        asv_rates: ``(pfa_asv, pmiss_asv, pfa_spoof_asv)`` instead of the ASV scores: the share of nontargets
            the ASV accepts, of targets it rejects, and of spoofs it accepts (``1 - pmiss_spoof_asv``; note
            that :func:`asv_error_rates` returns the spoof *miss* rate). ASVspoof 5 fixes them to the
            organisers' ASV: ``(0.01881016557566423, 0.01880141010575793, 0.4607082907604729)``.

    Returns:
        ``(tdcf_norm, cm_thresholds)``, each (N + M + 1,), aligned with :func:`compute_det_curve`.

    Raises:
        ValueError: if both or neither of the ASV scores and ``asv_rates`` are given, or if the ASV system
            makes a cost weight negative or the normaliser zero (the official code stops there too).
    """
    pfa_asv, pmiss_asv, pfa_spoof_asv = _resolve_asv_rates(asv_target, asv_nontarget, asv_spoof, asv_rates)
    pmiss_cm, pfa_cm, thresholds = compute_det_curve(bona_cm, spoof_cm)
    c = costs
    if revised:
        c0 = c.p_tar * c.c_miss * pmiss_asv + c.p_non * c.c_fa * pfa_asv
        c1 = c.p_tar * c.c_miss - c0
        c2 = c.p_spoof * c.c_fa_spoof * pfa_spoof_asv
        norm = c0 + min(c1, c2)
    else:
        c0 = 0.0
        c1 = c.p_tar * (c.c_miss_cm - c.c_miss_asv * pmiss_asv) - c.p_non * c.c_fa_asv * pfa_asv
        c2 = c.c_fa_cm * c.p_spoof * pfa_spoof_asv
        norm = min(c1, c2)
    if min(c0, c1, c2) < 0 or norm <= 0:
        raise ValueError(
            f"t-DCF undefined for this ASV system (weights C0={c0:.4g}, C1={c1:.4g}, C2={c2:.4g}): "
            "check that the ASV scores are sensible"
        )
    return (c0 + c1 * pmiss_cm + c2 * pfa_cm) / norm, thresholds


def min_tdcf(
    bona_cm: ArrayLike,
    spoof_cm: ArrayLike,
    asv_target: ArrayLike | None = None,
    asv_nontarget: ArrayLike | None = None,
    asv_spoof: ArrayLike | None = None,
    revised: bool = False,
    costs: CostModel = ASVSPOOF_COSTS,
    *,
    asv_rates: Sequence[float] | None = None,
) -> float:
    """Minimum normalised t-DCF over all CM thresholds (see :func:`tdcf_curve` for the arguments).

    ``revised=False`` gives the ASVspoof 2019 t-DCF, ``revised=True`` the ASVspoof 2021 one; ASVspoof 5 uses
    ``min_tdcf(bona_cm, spoof_cm, asv_rates=(pfa_asv, pmiss_asv, pfa_spoof_asv), revised=True)``.
    """
    curve, _ = tdcf_curve(
        bona_cm, spoof_cm, asv_target, asv_nontarget, asv_spoof, revised=revised, costs=costs, asv_rates=asv_rates
    )
    return float(curve.min())


def read_asv_scores(
    path: str | os.PathLike[str],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Read an ASVspoof 2019 ASV score file, e.g. ``ASVspoof2019.LA.asv.eval.gi.trl.scores.txt``.

    Each non-blank line ends with ``KEY SCORE``, KEY one of target / nontarget / spoof. The official files
    have three fields, ``SOURCE KEY SCORE`` (``bonafide target 3.19``, ``A13 spoof -0.58``); four fields
    with a leading speaker id (``LA_0039 - target 2.3``) are accepted too.

    Returns:
        ``(target, nontarget, spoof)`` score arrays.

    Raises:
        DataError (a ValueError): naming the file and the 1-based line number of the first malformed line.
    """
    found: dict[str, list[float]] = {key: [] for key in ASV_KEYS}
    for number, line in enumerate(read_text(path, "ASV score file").split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) not in (3, 4):
                raise ValueError(f"expected 3 or 4 fields, got {len(fields)}")
            key, score = fields[-2], float(fields[-1])
            if key not in found:
                raise ValueError(f"unknown key {key!r}, expected one of {', '.join(ASV_KEYS)}")
            if not np.isfinite(score):
                raise ValueError(f"non-finite score {fields[-1]!r}")
        except ValueError as err:
            raise DataError(f"{os.fspath(path)}, line {number}: {err}: {line.rstrip()!r}") from None
        found[key].append(score)
    return tuple(np.asarray(found[key], dtype=np.float64) for key in ASV_KEYS)  # type: ignore[return-value]


def _is_bonafide(keys: ArrayLike) -> NDArray[np.bool_]:
    k = np.asarray(keys).ravel()
    if k.dtype.kind in "USO":
        lowered = np.char.lower(k.astype(str))
        unknown = set(np.unique(lowered)) - {"bonafide", "bona-fide", "genuine", "spoof"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}, expected 'bonafide' or 'spoof'")
        return lowered != "spoof"
    return k.astype(bool)


def eer_table(scores: ArrayLike, keys: ArrayLike, attacks: ArrayLike | Sequence[str]) -> dict[str, Any]:
    """Pooled EER and one EER per attack (that attack's spoofs vs all bona fide trials).

    Args:
        scores: (N,) CM scores, higher = more bona fide.
        keys: (N,) ``"bonafide"`` / ``"spoof"`` strings, or booleans / 0-1 (1 = bona fide).
        attacks: (N,) attack id per trial (e.g. ``"A07"``); ignored for bona fide trials.

    Returns:
        A JSON-ready dict ``{"pooled": row, "per_attack": {attack: row, ...}}`` where each row is
        ``{"eer": float, "threshold": float, "n_bonafide": int, "n_spoof": int}``; attacks sorted by name.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    bona = _is_bonafide(keys)
    att = np.asarray(attacks).astype(str).ravel()
    if not s.size == bona.size == att.size:
        raise ValueError(f"scores, keys and attacks differ in length: {s.size}, {bona.size}, {att.size}")

    def row(spoof_mask: NDArray[np.bool_]) -> dict[str, Any]:
        eer, thr = compute_eer(s[bona], s[spoof_mask])
        return {"eer": eer, "threshold": thr, "n_bonafide": int(bona.sum()), "n_spoof": int(spoof_mask.sum())}

    spoof = ~bona
    return {
        "pooled": row(spoof),
        "per_attack": {str(a): row(spoof & (att == a)) for a in np.unique(att[spoof])},
    }


def format_table(table: dict[str, Any]) -> str:
    """Render an :func:`eer_table` result as a fixed-width text table (EER in %)."""
    rows = [*table["per_attack"].items(), ("pooled", table["pooled"])]
    width = max(9, *(len(name) for name, _ in rows))
    lines = [f"{'condition':<{width}}  {'n_spoof':>8}  {'EER (%)':>8}  {'threshold':>12}"]
    lines.append("-" * len(lines[0]))
    for i, (name, r) in enumerate(rows):
        if i == len(rows) - 1 and len(rows) > 1:
            lines.append("-" * len(lines[0]))
        lines.append(f"{name:<{width}}  {r['n_spoof']:>8d}  {100 * r['eer']:>8.3f}  {r['threshold']:>12.6g}")
    return "\n".join(lines)


def split_metrics(
    split: str,
    scores: ArrayLike,
    keys: ArrayLike,
    attacks: ArrayLike | Sequence[str],
    threshold: float,
    subsets: ArrayLike | Sequence[str] | None = None,
    per_attack: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flat metrics of one labelled split and its :func:`eer_table`.

    Metrics: ``{split}_eer``, ``{split}_count``, ``{split}_frr`` / ``{split}_far`` at ``threshold`` (bona fide
    rejected, spoofs accepted; ``None`` for a NaN threshold), the EER of each subset (``{split}_eer_progress``
    ...) when ``subsets`` holds several, and with ``per_attack`` the EER of each attack against all bona fide
    trials (``eer_A07``...).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    table = eer_table(s, keys, attacks)
    bona = _is_bonafide(keys)
    known = np.isfinite(threshold)
    metrics: dict[str, Any] = {
        f"{split}_eer": table["pooled"]["eer"],
        f"{split}_count": int(s.size),
        f"{split}_frr": float(np.mean(s[bona] < threshold)) if known else None,
        f"{split}_far": float(np.mean(s[~bona] >= threshold)) if known else None,
    }
    groups = np.asarray(subsets if subsets is not None else [""] * s.size).astype(str)
    if len(set(groups)) > 1:
        for subset in sorted(set(groups)):
            b, sp = s[(groups == subset) & bona], s[(groups == subset) & ~bona]
            if len(b) and len(sp):
                metrics[f"{split}_eer_{subset}"] = compute_eer(b, sp)[0]
    if per_attack:
        metrics.update({f"eer_{attack}": row["eer"] for attack, row in table["per_attack"].items()})
    return metrics, table
