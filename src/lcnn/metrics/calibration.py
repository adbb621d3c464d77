"""Score calibration and fusion: affine maps from scores to log-likelihood ratios (BOSARIS style).

Both are fitted by one prior-weighted logistic regression (:func:`fit_fusion`; calibration is its one-system
case). For bona fide scores ``x_b`` and spoof scores ``x_s`` of ``k`` systems, with ``llr = w . x + b``, it
minimises

    pi * mean_b log(1 + exp(-(llr + logit pi))) + (1 - pi) * mean_s log(1 + exp(llr + logit pi)) + L2 |w'|^2,

the cross-entropy of the posteriors at prior ``pi``: each class's mean log-loss weighted by its prior, so the
class counts of the training set do not matter, and the ``logit pi`` offset makes ``w . x + b`` an LLR.

Prior: ``pi`` is the effective bona fide prior of the operating point, ``Cmiss (1 - Pspoof) / (Cmiss (1 -
Pspoof) + Cfa Pspoof)`` (0.655 for ASVspoof 5's Pspoof 0.05, Cmiss 1, Cfa 10), whose Bayes threshold is the
one :func:`lcnn.metrics.act_dcf` decides at. The fit thus concentrates on the operating point the challenge
scores, which is what BOSARIS advises for one known application; ``pi = 0.5`` would target Cllr instead.

Regulariser and optimiser: the scores are standardised per system (pooled mean and standard deviation) and
``w'`` are the weights of the standardised scores, so the fit is invariant to an affine change of any
system's scores. ``L2 = 1e-6`` is negligible against the log-loss of overlapping classes but keeps the
optimum finite for perfectly separated ones, where the weights would otherwise grow without bound. The
objective is then strictly convex; it is minimised by L-BFGS with the analytic gradient from zero weights,
a deterministic procedure (at most ``MAX_ITER`` iterations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit

from lcnn.errors import DataError
from lcnn.metrics.dcf import _dcf_weights

__all__ = ["L2", "MAX_ITER", "MIN_SPREAD", "Calibration", "Fusion", "effective_prior", "fit_calibration", "fit_fusion"]

#: L2 penalty on the weights of the standardised scores.
L2 = 1e-6
#: Iteration cap of the L-BFGS fit.
MAX_ITER = 1000


def effective_prior(p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10) -> float:
    """Effective bona fide prior ``Cmiss (1 - Pspoof) / (Cmiss (1 - Pspoof) + Cfa Pspoof)`` of an operating point.

    Its log-odds is minus the Bayes threshold of :func:`lcnn.metrics.act_dcf`.
    """
    w_miss, w_fa = _dcf_weights(p_spoof, c_miss, c_fa)
    return w_miss / (w_miss + w_fa)


def _matrix(x: ArrayLike, name: str, k: int | None = None) -> NDArray[np.float64]:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1 and k in (None, 1):
        a = a[:, None]
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0 or (k is not None and a.shape[1] != k):
        want = f"(n, {k})" if k is not None else "(n, k)"
        raise ValueError(f"{name} must be a non-empty {want} array of scores, got shape {np.shape(x)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite scores")
    return a


def _fit_logistic(
    bonafide: NDArray[np.float64], spoof: NDArray[np.float64], p_spoof: float, c_miss: float, c_fa: float
) -> tuple[NDArray[np.float64], float]:
    """``(weights (k,), bias)`` of the prior-weighted logistic regression described in the module docstring."""
    prior = effective_prior(p_spoof, c_miss, c_fa)
    offset = math.log(prior / (1 - prior))
    pooled = np.concatenate((bonafide, spoof))
    # Standardised through scores divided by their largest magnitude: the mean and standard deviation of scores
    # near 1e308 would overflow.
    scale = np.abs(pooled).max(axis=0)
    scale[scale == 0] = 1
    mean, std = (pooled / scale).mean(axis=0), (pooled / scale).std(axis=0)
    if np.any(std == 0):
        flat = np.flatnonzero(std == 0).tolist()
        raise ValueError(f"system(s) {flat} give every trial the same score: nothing to calibrate")
    zb, zs = (bonafide / scale - mean) / std, (spoof / scale - mean) / std
    cb, cs = prior / zb.shape[0], (1 - prior) / zs.shape[0]

    def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        w, b = theta[:-1], theta[-1]
        lb, ls = zb @ w + (b + offset), zs @ w + (b + offset)
        loss = cb * np.logaddexp(0, -lb).sum() + cs * np.logaddexp(0, ls).sum() + L2 * (w @ w)
        gb, gs = -cb * expit(-lb), cs * expit(ls)
        grad = np.append(zb.T @ gb + zs.T @ gs + 2 * L2 * w, gb.sum() + gs.sum())
        return float(loss), grad

    result = minimize(
        objective,
        np.zeros(zb.shape[1] + 1),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": MAX_ITER, "ftol": 1e-15, "gtol": 1e-10},
    )
    w_std, b_std = result.x[:-1], float(result.x[-1])
    weights = w_std / (std * scale)
    _refuse_degenerate(pooled, weights)
    return weights, b_std - float(w_std @ (mean / std))


#: The least spread, in LLR, of the middle 98 % of a system's training scores under a fitted map: below it the
#: map sends almost every score to one value.
MIN_SPREAD = 1e-6


def _refuse_degenerate(pooled: NDArray[np.float64], weights: NDArray[np.float64]) -> None:
    """Refuse a fit in which a few extreme scores leave the others no weight: a map that sends the middle 98 % of
    a system's scores to one LLR (a score of 1e308 among scores near 1 does that) is no calibration."""
    low, high = np.percentile(pooled, [1, 99], axis=0)
    for k in range(pooled.shape[1]):
        if abs(weights[k]) * (high[k] - low[k]) < MIN_SPREAD and high[k] > low[k]:
            extreme = pooled[np.abs(pooled[:, k] - np.median(pooled[:, k])).argmax(), k]
            where = f"system {k}" if pooled.shape[1] > 1 else "the scores"
            raise ValueError(f"{where}: the score {extreme:.6g} lies so far from the others ({low[k]:.6g} to "
                             f"{high[k]:.6g} hold 98 % of them) that the fit would map them all to one value; "
                             "remove or clip the extreme scores")  # fmt: skip


def _number(value: Any, key: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{what}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _fields(data: Any, what: str, keys: tuple[str, ...]) -> Mapping[str, Any]:
    """Check that ``data`` is a dict with exactly ``keys`` (plus an optional matching ``"type"``)."""
    if not isinstance(data, Mapping):
        raise DataError(f"{what}: expected a dict, got {type(data).__name__}")
    if data.get("type", what) != what:
        raise DataError(f"{what}: this is a {data['type']!r} dict, not a {what!r} one")
    present = set(data) - {"type"}
    missing, unknown = [k for k in keys if k not in present], sorted(map(str, present - set(keys)))
    if missing or unknown:
        raise DataError(f"{what}: missing keys {missing}, unknown keys {unknown}; expected {list(keys)}")
    return data


@dataclass(frozen=True)
class Calibration:
    """Affine calibration of one system's scores to LLRs, ``llr = a * score + b``.

    Attributes:
        a, b: slope and offset. p_spoof, c_miss, c_fa: the operating point it was fitted for.
    """

    a: float
    b: float
    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0

    def __post_init__(self) -> None:
        for name in ("a", "b", "p_spoof", "c_miss", "c_fa"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not (math.isfinite(self.a) and math.isfinite(self.b)):
            raise ValueError(f"a and b must be finite, got a={self.a!r}, b={self.b!r}")
        _dcf_weights(self.p_spoof, self.c_miss, self.c_fa)

    def apply(self, scores: ArrayLike) -> NDArray[np.float64]:
        """LLRs of ``scores`` (any shape, kept)."""
        return self.a * np.asarray(scores, dtype=np.float64) + self.b

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` reads it back."""
        return {"type": "calibration", "a": self.a, "b": self.b, **_point(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Inverse of :meth:`to_dict`. Raises DataError, naming the problem, on a malformed dict."""
        d = _fields(data, "calibration", ("a", "b", "p_spoof", "c_miss", "c_fa"))
        values = {k: _number(d[k], k, "calibration") for k in ("a", "b", "p_spoof", "c_miss", "c_fa")}
        try:
            return cls(**values)
        except ValueError as err:
            raise DataError(f"calibration: {err}") from None


@dataclass(frozen=True)
class Fusion:
    """Linear fusion of ``k`` systems' scores to LLRs, ``llr = scores @ weights + bias``.

    Attributes:
        weights: (k,) one weight per system, stored as a tuple. bias: the offset.
        p_spoof, c_miss, c_fa: the operating point it was fitted for.
    """

    weights: tuple[float, ...]
    bias: float
    p_spoof: float = 0.05
    c_miss: float = 1.0
    c_fa: float = 10.0

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or not np.isfinite(weights).all():
            raise ValueError(f"weights must be a non-empty list of finite numbers, got {self.weights!r}")
        object.__setattr__(self, "weights", tuple(weights.tolist()))
        for name in ("bias", "p_spoof", "c_miss", "c_fa"):
            object.__setattr__(self, name, float(getattr(self, name)))
        if not math.isfinite(self.bias):
            raise ValueError(f"bias must be finite, got {self.bias!r}")
        _dcf_weights(self.p_spoof, self.c_miss, self.c_fa)

    def apply(self, scores: ArrayLike) -> NDArray[np.float64]:
        """Fused LLRs, (n,), of ``scores`` (n, k); a 1-D array is read as (n, 1) when k is 1."""
        x = np.asarray(scores, dtype=np.float64)
        k = len(self.weights)
        if x.ndim == 1 and k == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != k:
            raise ValueError(f"scores must be (n, {k}) for this {k}-system fusion, got shape {x.shape}")
        return x @ np.asarray(self.weights) + self.bias

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; :meth:`from_dict` reads it back."""
        return {"type": "fusion", "weights": list(self.weights), "bias": self.bias, **_point(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fusion:
        """Inverse of :meth:`to_dict`. Raises DataError, naming the problem, on a malformed dict."""
        d = _fields(data, "fusion", ("weights", "bias", "p_spoof", "c_miss", "c_fa"))
        weights = d["weights"]
        if not isinstance(weights, (list, tuple)) or not weights:
            raise DataError(f"fusion: 'weights' must be a non-empty list of numbers, got {weights!r}")
        w = [_number(v, "weights", "fusion") for v in weights]
        values = {k: _number(d[k], k, "fusion") for k in ("bias", "p_spoof", "c_miss", "c_fa")}
        try:
            return cls(weights=tuple(w), **values)
        except ValueError as err:
            raise DataError(f"fusion: {err}") from None


def _point(model: Calibration | Fusion) -> dict[str, float]:
    return {"p_spoof": model.p_spoof, "c_miss": model.c_miss, "c_fa": model.c_fa}


def fit_fusion(
    bonafide: ArrayLike, spoof: ArrayLike, p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10
) -> Fusion:
    """Fit a linear fusion of ``k`` systems to LLRs at the operating point ``(p_spoof, c_miss, c_fa)``.

    Args:
        bonafide: (n_bona, k) scores of the bona fide trials, one column per system.
        spoof: (n_spoof, k) scores of the spoofed trials. 1-D inputs are read as one system.
        p_spoof, c_miss, c_fa: the operating point (its effective prior weights the fit; module docstring).

    Returns:
        The :class:`Fusion`; ``fusion.apply(scores)`` gives LLRs, to be scored by :func:`lcnn.metrics.act_dcf`.

    Raises:
        ValueError: on empty, non-finite or mismatched inputs, or a system that gives every trial one score.
    """
    bona = _matrix(bonafide, "bonafide")
    spf = _matrix(spoof, "spoof", bona.shape[1])
    weights, bias = _fit_logistic(bona, spf, p_spoof, c_miss, c_fa)
    return Fusion(tuple(weights.tolist()), bias, p_spoof, c_miss, c_fa)


def fit_calibration(
    bonafide: ArrayLike, spoof: ArrayLike, p_spoof: float = 0.05, c_miss: float = 1, c_fa: float = 10
) -> Calibration:
    """Fit ``llr = a * score + b`` to one system's scores: :func:`fit_fusion` with ``k = 1``.

    Args:
        bonafide: (N,) scores of bona fide trials. spoof: (M,) scores of spoofed trials.
        p_spoof, c_miss, c_fa: the operating point.

    Returns:
        The :class:`Calibration`. Its map is increasing (``a > 0``) for any system better than chance, so
        min DCF and EER are unchanged while act DCF approaches min DCF.
    """
    bona, spf = np.asarray(bonafide, dtype=np.float64).ravel(), np.asarray(spoof, dtype=np.float64).ravel()
    fusion = fit_fusion(bona, spf, p_spoof, c_miss, c_fa)
    return Calibration(fusion.weights[0], fusion.bias, p_spoof, c_miss, c_fa)
