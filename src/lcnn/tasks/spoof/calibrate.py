"""A spoof checkpoint's calibration: stored in the checkpoint by ``lcnn calibrate --checkpoint``, read back by
:func:`lcnn.tasks.load_task` (``module.calibration``), and used by ``predict`` for LLRs, Bayes decisions and
posteriors.

The checkpoint keeps it as a top-level entry, ``lcnn_calibration`` (:meth:`lcnn.metrics.Calibration.to_dict`);
the weights and every other entry are left as they were."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit

from lcnn.errors import UserError
from lcnn.io import atomic_path
from lcnn.metrics import Calibration
from lcnn.metrics.dcf import bayes_threshold
from lcnn.tasks import find_checkpoint, read_checkpoint

CHECKPOINT_KEY = "lcnn_calibration"


def store_calibration(checkpoint: str | os.PathLike, calibration: Calibration) -> Path:
    """Write ``calibration`` into a spoof checkpoint (or a run folder's best one), atomically; returns its path."""
    path = find_checkpoint(checkpoint)
    task = read_checkpoint(path)["lcnn_task"]
    if path.is_dir():  # a Hub-layout folder: its config.json is the export's, made from a checkpoint
        raise UserError(f"{path}: an exported model folder; calibrate the run's checkpoint and export it again")
    if task != "spoof":
        raise UserError(f"{path}: a {task} checkpoint; a calibration maps the scores of spoof models")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # whole, not memory-mapped: it is rewritten
    ckpt[CHECKPOINT_KEY] = calibration.to_dict()
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def read_calibration(ckpt: dict[str, Any], where: str) -> Calibration | None:
    """The calibration a checkpoint dict holds, ``None`` without one; a malformed one is a UserError."""
    if CHECKPOINT_KEY not in ckpt:
        return None
    try:
        return Calibration.from_dict(ckpt[CHECKPOINT_KEY])
    except UserError as err:
        raise UserError(f"{where}: {CHECKPOINT_KEY}: {err}") from None


def prior_of(calibration: Calibration | None, prior: float | None = None) -> float:
    """The prior of a spoof for the posteriors: ``prior``, or the calibration's Pspoof. A UserError without a
    calibration or for a ``prior`` outside (0, 1): ``predict`` asks before it scores anything."""
    if calibration is None:
        raise UserError("--prior needs a calibrated checkpoint (lcnn calibrate DEV_SCORES --checkpoint CKPT)")
    p_spoof = calibration.p_spoof if prior is None else float(prior)
    if not 0 < p_spoof < 1:
        raise UserError(f"--prior must be a probability in (0, 1), got {prior!r}")
    return p_spoof


def calibrated_lines(files: Sequence[Any], scores: np.ndarray, calibration: Calibration | None,
                     prior: float | None = None, threshold: float | None = None) -> list[str]:  # fmt: skip
    """``FILE<TAB>score<TAB>llr<TAB>bonafide|spoof|-<TAB>posterior`` per file.

    The decision is the Bayes decision of the LLR at the calibration's operating point
    (:func:`lcnn.metrics.dcf.bayes_threshold`), or, with ``threshold``, ``score >= threshold`` (``-`` for a NaN
    threshold, as for an uncalibrated checkpoint); the posterior is P(bona fide | file) for a prior ``prior`` of
    spoofs (default: the calibration's Pspoof).
    """
    p_spoof = prior_of(calibration, prior)
    assert calibration is not None
    llrs = calibration.apply(scores)
    if threshold is None:
        decisions = np.where(llrs >= bayes_threshold(calibration.p_spoof, calibration.c_miss, calibration.c_fa),
                             "bonafide", "spoof")  # fmt: skip
    elif math.isnan(threshold):
        decisions = np.full(len(scores), "-")
    else:
        decisions = np.where(scores >= threshold, "bonafide", "spoof")
    posteriors = expit(llrs + math.log((1 - p_spoof) / p_spoof))
    return [f"{file}\t{s:.6f}\t{llr:.6f}\t{d}\t{p:.6f}"
            for file, s, llr, d, p in zip(files, scores, llrs, decisions, posteriors)]  # fmt: skip
