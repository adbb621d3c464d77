"""The one spoof inference path, from waveform to score (and calibrated LLR): decoded audio in memory.

Every spoof path computes a score alike: the features of the whole utterance (:class:`lcnn.audio.FeaturePipeline`:
trimming, front-end), cropped or repeat-padded to a fixed-size model's frames (:func:`lcnn.data.speech.model_input`),
batched (:func:`~lcnn.score.data.collate_items`) and scored by the module's ``predict_step``. The scoring engine
(:func:`lcnn.score.score_trials`: ``lcnn score``, ``evaluate``, ``predict``) runs those same three steps on files
through Lightning; :func:`score_waveforms` runs them on waveforms already decoded (``lcnn serve``, the Python API),
so that a file and its decoded waveform score the same. Windows only where asked for (:mod:`lcnn.score.segments`).

A score does not depend on its batch mates: batches here are of similar length, and the models score each
item as alone (the LCNN-LSTM masks the padding), up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lcnn.audio.io import resample_wave
from lcnn.audio.pipeline import FeaturePipeline
from lcnn.data.speech import model_input
from lcnn.score.data import collate_items
from lcnn.score.segments import parse_aggregate, wave_windows

__all__ = ["BATCH_SECONDS", "WaveScores", "score_features", "score_waveforms"]

#: Most seconds of audio (padding included) in one batch of :func:`score_waveforms`: bounds the memory of a
#: batch of long utterances (the batch is cut earlier); it does not change a score.
BATCH_SECONDS = 256.0


@dataclass(frozen=True)
class WaveScores:
    """The scores of :func:`score_waveforms`, in the order of the waveforms: ``scores`` (higher = more bona fide),
    ``llrs`` (the module's calibration applied; ``None`` without one) and, with windows, each waveform's
    ``windows`` (``(start, end)`` in samples at the model's rate) with their ``window_scores``."""

    scores: np.ndarray
    llrs: np.ndarray | None = None
    windows: list[list[tuple[int, int]]] | None = None
    window_scores: list[np.ndarray] | None = None


@contextmanager
def _exact_fp32(module: Any) -> Iterator[None]:
    """No TF32 on CUDA while scoring (as :class:`lcnn.score.ExactFP32` in the engine): fp32 is the reference."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def score_features(module: Any, feats: Sequence[Tensor]) -> np.ndarray:
    """Scores ``(N,)`` float64 of model inputs (``(frames, n_features)`` each, :func:`model_input`): one batch
    collated as the engine collates it, through the module's ``predict_step``, in eval and inference mode."""
    x, lengths, labels, index, _ = collate_items([(f, i, None) for i, f in enumerate(feats)])
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(), _exact_fp32(module):
            scores, order = module.predict_step((x.to(device), lengths.to(device), labels, index.to(device)), 0)
    finally:
        module.train(was_training)
    out = np.empty(len(feats))
    out[order.cpu().numpy()] = scores.float().cpu().numpy()
    return out


def score_waveforms(module: Any, waves: Sequence[Tensor | np.ndarray], sample_rate: int | None = None, *,
                    segment: float | None = None, hop: float | None = None, aggregate: str = "mean",
                    batch_size: int = 32, pipeline: FeaturePipeline | None = None) -> WaveScores:  # fmt: skip
    """Score decoded waveforms with a spoof module (a :class:`lcnn.tasks.spoof.SpoofModule` or any module whose
    ``hparams`` hold ``frontend`` and ``frames`` and whose ``predict_step`` takes the engine's batches): the
    same scores as ``lcnn score`` / ``lcnn predict`` give the files they were decoded from.

    Args:
        waves: mono ``(samples,)`` float waveforms (a stereo file's channels averaged, as :func:`lcnn.audio.load_audio`
            does).
        sample_rate: their rate; ``None``: the model's (``module.hparams.frontend["sample_rate"]``); another
            is resampled as :func:`lcnn.audio.load_audio` resamples a file.
        segment, hop, aggregate: windows of ``segment`` seconds every ``hop`` (default: ``segment``), each
            waveform's score their ``aggregate`` (``mean``, ``min``, ``quantile:Q``), as ``lcnn score --segment``;
            ``None`` (the default): whole utterances.
        batch_size: most utterances (or windows) in one batch (at most :data:`BATCH_SECONDS` of audio).
        pipeline: the module's :class:`~lcnn.audio.FeaturePipeline`, when the caller keeps one.

    Returns:
        :class:`WaveScores`; ``llrs`` where the module has a ``calibration`` (``lcnn calibrate --checkpoint``).
    """
    hp = module.hparams
    pipeline = pipeline or FeaturePipeline(hp.frontend)
    rate = int(pipeline.config["sample_rate"])
    items = []
    for wave in waves:
        wave = np.asarray(wave, dtype=np.float32) if not isinstance(wave, Tensor) else wave.detach().cpu().float()
        if sample_rate is not None and sample_rate != rate:
            wave = resample_wave(np.asarray(wave), sample_rate, rate)
        items.append(torch.as_tensor(wave))
    if any(w.dim() != 1 or len(w) == 0 for w in items):
        raise ValueError("expected mono waveforms of at least one sample, (samples,) each")
    bounds = [wave_windows(len(w), rate, segment, hop) if segment else [(0, len(w))] for w in items]
    cuts = [(k, start, end) for k, windows in enumerate(bounds) for start, end in windows]
    scores = np.empty(len(cuts))
    for batch in _batches([end - start for _, start, end in cuts], batch_size, BATCH_SECONDS * rate):
        feats = [model_input(pipeline(items[cuts[c][0]][cuts[c][1] : cuts[c][2]]), hp.frames) for c in batch]
        scores[batch] = score_features(module, feats)
    if segment:
        how = parse_aggregate(aggregate)
        first = np.cumsum([0] + [len(b) for b in bounds])
        window_scores = [scores[first[k] : first[k + 1]] for k in range(len(bounds))]
        result = np.array([how(s) for s in window_scores])
    else:
        window_scores, result, bounds = None, scores, None
    calibration = getattr(module, "calibration", None)
    llrs = None if calibration is None else np.asarray(calibration.apply(result), dtype=np.float64)
    return WaveScores(result, llrs, bounds, window_scores)


def _batches(lengths: Sequence[int], batch_size: int, most_samples: float) -> list[np.ndarray]:
    """Items in length order, cut every ``batch_size`` or before the padded batch passes ``most_samples``."""
    batches: list[np.ndarray] = []
    current: list[int] = []
    for i in np.argsort(lengths, kind="stable").tolist():
        if current and (len(current) == batch_size or (len(current) + 1) * lengths[i] > most_samples):
            batches.append(np.array(current))
            current = []
        current.append(i)
    return batches + ([np.array(current)] if current else [])
