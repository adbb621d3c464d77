"""The spoofing DataModule: train / dev / eval splits of a corpus (or the user's protocols) as cached features."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset

from lcnn.audio import build_augmenters, build_frontend, frontend_config, parse_augment
from lcnn.data.asvspoof import SPLITS, check_audio, load_split, resolve_sources
from lcnn.data.augmented import AugmentedCollate, AugmentedSpoofDataset
from lcnn.data.corpora import get_corpus
from lcnn.data.download import cache_dir as default_cache_dir
from lcnn.data.features import FeatureCache
from lcnn.data.samplers import BucketBatchSampler, length_order
from lcnn.data.speech import MIN_FRAMES, SpoofDataset, collate
from lcnn.errors import DataError, UserError
from lcnn.metrics import min_tdcf, read_asv_scores


def parse_protocols(value: Any) -> dict[str, str]:
    """``["train=a.txt", "dev=b.txt"]`` (``--protocol``, repeatable) or a dict -> ``{split: file}``."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    out = {}
    for item in [value] if isinstance(value, str) else value:
        split, sep, file = str(item).partition("=")
        if not sep or split not in SPLITS or not file:
            raise UserError(f"--protocol {item!r}: expected SPLIT=FILE with SPLIT one of {', '.join(SPLITS)}")
        out[split] = file
    return out


def cache_root(root: str | os.PathLike | None = None, frontend: dict[str, Any] | None = None) -> Path | None:
    """The feature cache folder: ``root``, else ``$LCNN_CACHE/features`` or ``~/.cache/lcnn/features``; ``None``
    (no cache) for an ``ssl`` front-end, whose data is the waveform itself (64 kB a second, decoded each time)."""
    if frontend is not None and frontend["name"] == "ssl":
        return None
    return Path(root) if root else default_cache_dir() / "features"


def scoring_loader(ds: SpoofDataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """Every trial once, in batches of similar length (items carry their dataset index)."""
    return DataLoader(Subset(ds, length_order(ds.sizes)), batch_size, collate_fn=collate, num_workers=num_workers,
                      persistent_workers=num_workers > 0, generator=torch.Generator())  # fmt: skip


class SpoofDataModule(L.LightningDataModule):
    """Train / dev (validation) / eval splits of a spoofing corpus, as cached front-end features.

    Args:
        data: a corpus (:func:`lcnn.data.corpora.list_corpora`); ``custom`` takes the splits from ``protocol``.
        data_dir: the corpus folder (``minispoof``: or ``$LCNN_MINISPOOF``).
        protocol: ``SPLIT=FILE`` items (or a dict), a protocol or CSV for a split.
        frontend, f_max, trim_silence: the features (:func:`lcnn.audio.frontend_config`: ``lfcc``, ``spec``
            or ``ssl:NAME_OR_PATH``, the upper band edge, dropping exact-zero silence at both ends).
        ssl_finetune: train an ``ssl:`` front-end's model with the back-end (else it stays frozen).
        frames: fixed number of frames per item (crop / repeat-pad), ``None`` for whole utterances.
        batch_size, num_workers: of the loaders (training batches group utterances of similar length).
        cache_dir: the feature cache folder. asv_scores: an ASV score file of the eval split, for the t-DCF.
        augment: augmentations of the training split (``rawboost:ALGO``, ``codec[:C1,C2]``, ``noise:DIR``,
            ``reverb:DIR``, ``speed``: :func:`lcnn.audio.parse_augment`), checked here, applied on the fly
            (:mod:`lcnn.data.augmented`); the dev and eval features stay cached.

    ``setup`` reads the protocols and checks every trial's audio, before any training: missing files are
    reported with their count and the first few paths.
    """

    def __init__(
        self,
        data: str = "minispoof",
        data_dir: str | None = None,
        protocol: list[str] | dict[str, str] | None = None,
        frontend: str = "lfcc",
        f_max: float | None = None,
        n_fft: int | None = None,
        trim_silence: bool | None = None,
        ssl_finetune: bool = False,
        frames: int | None = 750,
        batch_size: int = 64,
        num_workers: int = 0,
        cache_dir: str | None = None,
        asv_scores: str | None = None,
        augment: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.augment = parse_augment(augment) if augment else None  # a missing folder or ffmpeg stops here
        if frames is not None and frames < MIN_FRAMES:
            raise UserError(f"--frames must be at least {MIN_FRAMES}, got {frames}")
        if batch_size < 1:
            raise UserError(f"--batch-size must be at least 1, got {batch_size}")
        try:
            finetune = ssl_finetune if frontend.startswith("ssl:") else None
            self.frontend_config = frontend_config(frontend, f_max=f_max, n_fft=n_fft, trim_silence=trim_silence,
                                                  finetune=finetune)
            self.n_features: int = build_frontend(self.frontend_config).n_features
        except ValueError as err:
            raise UserError(str(err)) from None
        self.protocols = parse_protocols(protocol)
        self.data, self.data_dir, self.frames = data, data_dir, frames
        self.batch_size, self.num_workers = batch_size, num_workers
        self.cache_dir, self.asv_scores = cache_dir, asv_scores
        self.splits: dict[str, SpoofDataset] = {}
        self.generator = torch.Generator().manual_seed(torch.initial_seed())  # the shuffles: saved for resume
        self.run_seed = torch.initial_seed()  # with the epoch and the trial, the seed of an augmentation

    @property
    def test_splits(self) -> list[str]:
        """The splits ``test_dataloader`` scores, in its order: every split but train."""
        return [split for split in self.splits if split != "train"]

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if self.asv_scores:  # check the file now rather than after training
            try:
                min_tdcf([1.0], [0.0], *read_asv_scores(self.asv_scores), revised=get_corpus(self.data).revised_tdcf)
            except (OSError, ValueError) as err:
                raise DataError(f"--asv-scores {self.asv_scores}: {err}") from None
        self.cache = FeatureCache(self.frontend_config, cache_root(self.cache_dir, self.frontend_config))
        sources = resolve_sources(self.data, self.data_dir, self.protocols)
        missing = {"train", "dev"} - set(sources)
        if missing:
            raise UserError(f"{self.data}: training needs train and dev splits, found no "
                            f"{' or '.join(sorted(missing))} (ASVspoof 2021 trains on ASVspoof 2019 LA under the "
                            "same --data-dir; --data custom needs --protocol train=FILE --protocol dev=FILE)")
        for split, source in sources.items():
            trials = load_split(source)
            if split != "eval" and any(t.key is None for t in trials):
                raise DataError(f"{split}: {source.protocol or source.trial_list} has unlabelled trials")
            sizes = check_audio(trials, split)
            if split == "train" and self.augment is not None:
                utterance, self.rawboost = build_augmenters(self.augment)
                self.splits[split] = AugmentedSpoofDataset(trials, self.cache.pipeline, utterance, self.run_seed, sizes)
            else:
                self.splits[split] = SpoofDataset(trials, self.cache, self.frames, train=split == "train", sizes=sizes)
        for split in ("train", "dev"):
            keys = {t.key for t in self.splits[split].trials}
            if keys != {"bonafide", "spoof"}:
                raise DataError(f"{split}: needs both bona fide and spoofed trials, found only {keys}")

    def set_epoch(self, epoch: int) -> None:
        """Tell the training split the epoch (its augmentations' seeds depend on it)."""
        train = self.splits.get("train")
        if isinstance(train, AugmentedSpoofDataset):
            train.set_epoch(epoch)

    def train_dataloader(self) -> DataLoader:
        # This module's generator, workers started anew each epoch (seeded from it): an exact resume replays them.
        ds, generator = self.splits["train"], self.generator
        batch = collate
        if isinstance(ds, AugmentedSpoofDataset):
            self.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)  # a resumed epoch's
            batch = AugmentedCollate(ds.pipeline, ds.augment, self.rawboost, self.frames)
        if self.frames:  # fixed size: no length to group by
            return DataLoader(ds, self.batch_size, shuffle=True, collate_fn=batch, num_workers=self.num_workers,
                              generator=generator)  # fmt: skip
        sampler = BucketBatchSampler(RandomSampler(ds, generator=generator), self.batch_size, lengths=ds.sizes,
                                     shuffle=True, generator=generator)  # fmt: skip
        return DataLoader(ds, batch_sampler=sampler, collate_fn=batch, num_workers=self.num_workers,
                          generator=generator)  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        return scoring_loader(self.splits["dev"], self.batch_size, self.num_workers)

    def test_dataloader(self) -> list[DataLoader]:
        return [scoring_loader(self.splits[split], self.batch_size, self.num_workers) for split in self.test_splits]
