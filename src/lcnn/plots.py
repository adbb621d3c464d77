"""PNG plots: DET and ROC curves (training curves and confusion matrices belong here too).

Figures are built with matplotlib's object API on the Agg canvas, so plotting never touches pyplot's global
state or the user's interactive backend, and works headless. Every file is written atomically.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from scipy.stats import norm

from lcnn.io import atomic_path

__all__ = ["plot_confusion", "plot_det", "plot_roc", "plot_training_curves"]

DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
DET_LIMITS = (0.0005, 0.5)


def _new_figure(figsize: tuple[float, float] = (5.5, 5.0)) -> Figure:
    fig = Figure(figsize=figsize, dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Save ``fig`` to ``path`` atomically (:func:`lcnn.io.atomic_path`); the format follows the suffix (PNG
    by default)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format=fmt, bbox_inches="tight")
    return path


def _percent(p: float) -> str:
    return f"{100 * p:g}"


def plot_det(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]], path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """DET curves on normal-deviate (probit) axes, ASVspoof style.

    Args:
        curves: ``{name: (frr, far)}``, e.g. from :func:`lcnn.metrics.compute_det_curve`; each legend entry
            shows the curve's EER.
        path: output image (PNG).
        title: optional figure title.

    Returns:
        The written path.
    """
    lo, hi = DET_LIMITS
    fig = _new_figure()
    ax = fig.add_subplot()
    for name, (frr, far) in curves.items():
        frr, far = np.asarray(frr, dtype=np.float64), np.asarray(far, dtype=np.float64)
        k = int(np.argmin(np.abs(frr - far)))
        eer = (frr[k] + far[k]) / 2
        # Probit is infinite at 0 and 1: clip just outside the visible window.
        x, y = (norm.ppf(np.clip(r, lo / 2, 1 - lo / 2)) for r in (far, frr))
        (line,) = ax.plot(x, y, label=f"{name} (EER {100 * eer:.2f}%)")
        e = norm.ppf(np.clip(eer, lo / 2, 1 - lo / 2))
        ax.plot(e, e, "o", color=line.get_color(), markersize=4)
    ax.plot(norm.ppf(DET_LIMITS), norm.ppf(DET_LIMITS), ":", color="grey", linewidth=0.8)
    ticks = norm.ppf(DET_TICKS)
    labels = [_percent(t) for t in DET_TICKS]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
    ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
    ax.set_xlabel("False acceptance rate (%)")
    ax.set_ylabel("False rejection rate (%)")
    ax.grid(True, linestyle=":", linewidth=0.6)
    if curves:
        ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    return _save_figure(fig, path)


def plot_roc(
    far: ArrayLike, tar: ArrayLike, path: str | os.PathLike[str], label: str | None = None, title: str | None = None
) -> Path:
    """ROC curve (TAR against FAR) with a logarithmic FAR axis; points with FAR = 0 are not drawn.

    Args:
        far, tar: (P,) rates, e.g. from :func:`lcnn.metrics.roc_curve`.
        path: output image (PNG).
        label: optional legend entry. title: optional figure title.

    Returns:
        The written path.
    """
    far, tar = np.asarray(far, dtype=np.float64), np.asarray(tar, dtype=np.float64)
    shown = far > 0
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(far[shown], tar[shown], label=label)
    ax.set_xscale("log")
    ax.set_xlim(min(1e-4, far[shown].min()) if shown.any() else 1e-4, 1.0)
    ax.set_ylim(0.0, 1.005)
    ax.set_xlabel("False accept rate")
    ax.set_ylabel("True accept rate")
    ax.grid(True, which="both", linestyle=":", linewidth=0.6)
    if label:
        ax.legend(loc="lower right", fontsize="small")
    if title:
        ax.set_title(title)
    return _save_figure(fig, path)


def plot_training_curves(csv_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path | None:
    """Loss and accuracy (or whatever ``*_loss`` / ``*_acc`` / ``*_eer`` columns Lightning's CSV log has)
    per epoch, train against validation. Returns ``None`` when the log holds no epoch yet."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs: dict[int, dict[str, float]] = {}
    for row in rows:
        if row.get("epoch", "") == "":
            continue
        values = epochs.setdefault(int(float(row["epoch"])), {})
        values.update({k: float(v) for k, v in row.items() if v not in ("", None) and k not in ("epoch", "step")})
    if not epochs:
        return None
    kinds = [k for k in ("loss", "acc", "eer") if any(key.endswith(f"_{k}") for v in epochs.values() for key in v)]
    fig = _new_figure((5.0 * len(kinds), 4.0))
    for i, kind in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), i + 1)
        for split in ("train", "val"):
            points = [(e, v[f"{split}_{kind}"]) for e, v in sorted(epochs.items()) if f"{split}_{kind}" in v]
            if points:
                ax.plot([e + 1 for e, _ in points], [y for _, y in points], marker="o", ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(kind)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save_figure(fig, path)


def plot_confusion(confusion: np.ndarray, classes: list[str], path: str | os.PathLike[str]) -> Path:
    """Confusion matrix (rows: true class, columns: predicted), counts in the cells, rows shaded by recall."""
    confusion = np.asarray(confusion)
    rates = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig = _new_figure((size, size))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=90 if max(map(len, classes)) > 3 else 0)
    ax.set_yticks(ticks, classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for (i, j), count in np.ndenumerate(confusion):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    return _save_figure(fig, path)
