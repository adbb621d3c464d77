"""Training utterances augmented on the fly (``--augment``): decoded from the audio at every draw, never read
from the feature cache, so that no augmented sample is served twice.

Where each part runs: speed, reverberation and noise on the utterance in :class:`AugmentedSpoofDataset`; the
codecs, RawBoost and the front-end on the batch in :class:`AugmentedCollate`. Both run in the DataLoader
workers (``--num-workers``), off the model's critical path. Every random draw of an utterance's augmentation
comes from its seed, ``augment_seed(run seed, epoch, trial index)``: a run repeats, and an exact resume replays
it. Each codec drawn for a batch is coded once for all its utterances (one pair of ffmpeg processes, which
cost more to start than half a second of speech costs to code).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lcnn.audio import FeaturePipeline, RawBoost, UtteranceAugment, augment_seed
from lcnn.audio.codecs import codec_roundtrip_many
from lcnn.data.protocols import Trial
from lcnn.data.speech import collate, fit_frames

__all__ = ["AugmentedCollate", "AugmentedSpoofDataset"]


class AugmentedSpoofDataset(Dataset):
    """Items ``(wave (samples,) float32, label, index, seed)``: the trial's waveform as the front-end sees it
    (decoded, resampled, silence trimmed where configured), with the per-utterance augmentations applied.

    ``set_epoch`` before each epoch: the seeds depend on it. ``sizes`` (audio file sizes) stand in for the
    lengths when batches are grouped by length, as in :class:`~lcnn.data.speech.SpoofDataset`.
    """

    def __init__(self, trials: Sequence[Trial], pipeline: FeaturePipeline, augment: UtteranceAugment | None,
                 run_seed: int, sizes: Sequence[int]) -> None:  # fmt: skip
        self.trials, self.pipeline, self.augment = list(trials), pipeline, augment
        self.run_seed, self.sizes, self.epoch = int(run_seed), list(sizes), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int, int]:
        trial = self.trials[index]
        seed = augment_seed(self.run_seed, self.epoch, index)
        wave = self.pipeline.waveform(trial.path)
        if self.augment is not None:
            wave = self.augment(wave, seed, codec=False)
        return wave, trial.label, index, seed


class AugmentedCollate:
    """A batch of :class:`AugmentedSpoofDataset` items -> ``(x (B, 1, T, F), lengths, labels, index)`` as
    :func:`~lcnn.data.speech.collate` gives: the codecs (each drawn codec once for the batch), RawBoost on the
    padded waves, the front-end with the lengths, then ``frames`` for fixed-size models (random crops, seeded
    like the rest)."""

    def __init__(self, pipeline: FeaturePipeline, augment: UtteranceAugment | None, rawboost: RawBoost | None,
                 frames: int | None) -> None:  # fmt: skip
        self.pipeline, self.augment, self.frames = pipeline, augment, frames
        self.rawboost = rawboost.train() if rawboost is not None else None  # the identity in eval mode

    def __call__(self, batch: Sequence[tuple[Tensor, int, int, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        waves, labels, index, seeds = zip(*batch)
        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        if self.augment is not None and self.augment.spec.codec is not None:
            steps = [self.augment.codec_step(seed) for seed in seeds]
            for step in dict.fromkeys(s for s in steps if s is not None):
                chosen = [i for i, s in enumerate(steps) if s == step]
                coded = codec_roundtrip_many([waves[i] for i in chosen], step, self.pipeline.config["sample_rate"],
                                             self.augment.timeout)  # fmt: skip
                for i, wave in zip(chosen, coded):
                    waves[i] = wave
        lengths = torch.tensor([len(w) for w in waves])
        padded = torch.zeros(len(waves), int(lengths.max()))
        for i, wave in enumerate(waves):
            padded[i, : len(wave)] = torch.from_numpy(wave)
        with torch.no_grad():
            if self.rawboost is not None:
                padded = self.rawboost(padded, torch.tensor(seeds, dtype=torch.int64), lengths)
            feats = self.pipeline.frontend(padded, lengths).float()
        frames = self.pipeline.frontend.num_frames(lengths).clamp(max=feats.shape[1])
        items = [feats[i, : int(n)] for i, n in enumerate(frames)]
        if self.frames:  # the crop too comes from the utterance's seed
            crops = (torch.Generator().manual_seed(seed) for seed in seeds)
            items = [fit_frames(f, self.frames, True, crop) for f, crop in zip(items, crops)]
        return collate(list(zip(items, labels, index)))
