"""Datasets of speech features for the spoofing task: cached features of a list of trials, crop / repeat-pad
to a fixed number of frames, and a collate function that keeps the lengths."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lcnn.data.features import FeatureCache
from lcnn.data.protocols import Trial

MIN_FRAMES = 16  # the LCNN stacks pool four times by 2 along time


def fit_frames(feats: Tensor, frames: int, random_crop: bool = False,
               generator: torch.Generator | None = None) -> Tensor:  # fmt: skip
    """Crop or repeat-pad ``(T, F)`` features to ``(frames, F)``.

    Longer inputs are cropped at a random offset (``random_crop``, for training; drawn from ``generator``, else
    torch's global one) or from the start; shorter ones are tiled (the utterance repeated) until ``frames``.
    """
    t = feats.shape[0]
    if t > frames:
        start = int(torch.randint(0, t - frames + 1, (), generator=generator)) if random_crop else 0
        return feats[start : start + frames]
    if t < frames:
        return feats.repeat(math.ceil(frames / t), 1)[:frames]
    return feats


def model_input(feats: Tensor, frames: int | None) -> Tensor:
    """An utterance's (or window's) ``(T, F)`` features as a model scores them: whole for a model of any length
    (``frames`` ``None``), else cropped from the start or repeat-padded to ``frames`` (:func:`fit_frames`). The
    one rule of every scoring path: training's validation and test, ``lcnn score``, ``evaluate``, ``predict``,
    ``serve`` (:mod:`lcnn.score.waves`)."""
    return fit_frames(feats, frames) if frames else feats


class SpoofDataset(Dataset):
    """Cached front-end features of a list of trials.

    Items are ``(features (T, F) float32, label, index)``; with ``frames`` set, ``T == frames`` (see
    :func:`fit_frames`, random crops when ``train``), else the whole utterance. ``sizes`` (audio file
    sizes, from :func:`lcnn.data.asvspoof.check_audio`) stand in for the lengths when batches are grouped by length.
    """

    def __init__(self, trials: Sequence[Trial], cache: FeatureCache, frames: int | None = None,
                 train: bool = False, sizes: Sequence[int] | None = None) -> None:
        self.trials = list(trials)
        self.cache = cache
        self.frames = frames
        self.train = train
        self.sizes = list(sizes) if sizes is not None else [0] * len(self.trials)

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        trial = self.trials[index]
        feats = self.cache.get(trial.utt, trial.path)
        if self.train and self.frames:
            return fit_frames(feats, self.frames, random_crop=True), trial.label, index
        return model_input(feats, self.frames), trial.label, index


def collate(batch: Sequence[tuple[Tensor, int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Zero-pad to the longest item (at least :data:`MIN_FRAMES`).

    Returns:
        ``x (B, 1, T, F)``, ``lengths (B,)`` valid frames per item, ``labels (B,)``, dataset ``index (B,)``.
    """
    feats, labels, index = zip(*batch)
    lengths = torch.tensor([f.shape[0] for f in feats])
    x = feats[0].new_zeros(len(feats), max(MIN_FRAMES, int(lengths.max())), feats[0].shape[1])
    for i, f in enumerate(feats):
        x[i, : f.shape[0]] = f
    return x.unsqueeze(1), lengths, torch.tensor(labels), torch.tensor(index)
