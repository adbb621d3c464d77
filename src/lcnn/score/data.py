"""What the DataLoader workers of a scoring run do: decode, front-end and collate one planned batch each (and
on a CPU score it too: :class:`lcnn.score.engine.WorkerScoring`).

The batches are planned once for the whole input (:func:`plan_batches`: items in length order, cut every
``batch_size``), so that every run, restart and process count computes the same batches and hence
bit-identical scores. An item that cannot be read is not an error here: it travels in its batch as a
failure ``(index, reason)``, and the batch is scored without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lcnn.audio.pipeline import FeaturePipeline
from lcnn.data.features import FeatureCache
from lcnn.data.speech import collate, model_input
from lcnn.errors import DataError
from lcnn.score.segments import Windows
from lcnn.score.trials import TrialTable

__all__ = ["Batches", "ScoringData", "TrialFeatures", "WindowFeatures", "collate_items", "plan_batches"]

log = logging.getLogger("lcnn.score")

Item = tuple[Tensor | None, int, str | None]  # features, index, why they could not be computed


class _Items(Dataset):
    """Items as ``(features (T, F), index, None)``, or ``(None, index, reason)`` when reading failed; ``frames``
    crops or repeat-pads to a fixed size (:func:`lcnn.data.speech.model_input`)."""

    frames: int | None

    def read(self, i: int) -> Tensor:
        raise NotImplementedError

    def where(self, i: int) -> str:
        raise NotImplementedError

    def __getitem__(self, i: int) -> Item:
        try:
            feats = self.read(i)
        except (DataError, OSError) as err:  # AudioError, a file gone since the listing
            reason = " ".join(str(err).split()).removeprefix(f"{self.where(i)}: ")
            return None, i, reason
        return model_input(feats, self.frames), i, None


class TrialFeatures(_Items):
    """The features of each trial of a table, through the feature cache. A cache that cannot be written (a full
    disk, no permission) costs speed, not the file: it is scored from features computed again, uncached, with
    one warning per process."""

    def __init__(self, table: TrialTable, cache: FeatureCache, frames: int | None = None) -> None:
        self.table, self.cache, self.frames = table, cache, frames
        self.warned = False

    def __len__(self) -> int:
        return len(self.table)

    def where(self, i: int) -> str:
        return self.table.path(i)

    def read(self, i: int) -> Tensor:
        try:
            return self.cache.get(self.table.ids[i], self.table.path(i))
        except OSError as err:  # the cache's, or the audio's (gone since the listing): the audio says which
            feats = self.cache.pipeline(self.table.path(i))
            if not self.warned:
                self.warned = True
                log.warning("lcnn: warning: the feature cache %s cannot be written (%s); scoring without it",
                            self.cache.dir, " ".join(str(err).split()))  # fmt: skip
            return feats


class WindowFeatures(_Items):
    """The features of each window of :class:`Windows` (not cached)."""

    def __init__(self, table: TrialTable, windows: Windows, pipeline: FeaturePipeline,
                 frames: int | None = None) -> None:  # fmt: skip
        self.table, self.windows, self.pipeline, self.frames = table, windows, pipeline, frames

    def __len__(self) -> int:
        return len(self.windows)

    def where(self, w: int) -> str:
        return self.table.path(self.windows.locate(w)[0])

    def read(self, w: int) -> Tensor:
        f, start, count = self.windows.locate(w)
        return self.pipeline(self.table.path(f), start, count)


def collate_items(items: Sequence[Item]) -> tuple[Tensor, Tensor, Tensor, Tensor, list[tuple[int, str]]]:
    """``(x (B, 1, T, F), lengths, labels (-1), index, failed)`` of the items that were read
    (:func:`lcnn.data.speech.collate`) and the ``(index, reason)`` of those that were not."""
    good = [(feats, -1, i) for feats, i, reason in items if reason is None]
    failed = [(i, reason) for _, i, reason in items if reason is not None]
    if good:
        return (*collate(good), failed)
    empty = torch.zeros(0, dtype=torch.long)
    return torch.zeros(0, 1, 0, 0), empty, empty, empty, failed


class Batches(Dataset):
    """``batches[b]`` of ``items``, read and collated: one DataLoader item is one whole batch; with ``score``,
    scored where it is read too (``score(batch)``: a DataLoader worker runs the whole pipeline)."""

    def __init__(self, items: Dataset, batches: Sequence[np.ndarray], score: Callable[[Any], Any] | None = None
                 ) -> None:  # fmt: skip
        self.items, self.batches, self.score = items, batches, score

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> Any:
        batch = collate_items([self.items[int(i)] for i in self.batches[b]])
        return batch if self.score is None else self.score(batch)


def plan_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The items with a length (``>= 0``; a missing file has ``-1``) in length order (stable), cut every
    ``batch_size``: the same batches on every run and for any number of processes."""
    valid = np.flatnonzero(lengths >= 0)
    order = valid[np.argsort(lengths[valid], kind="stable")]
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


class ScoringData(L.LightningDataModule):
    """This process's share of the batches that are not done yet, as a DataLoader.

    ``setup`` runs once the processes exist: it lets the partial run check and record its fingerprint and
    read what is done (:meth:`lcnn.score.writer.PartialRun.prepare`), then keeps every ``world_size``-th
    remaining batch from ``global_rank`` on (each batch once over all processes, none padded or repeated).
    """

    allow_zero_length_dataloader_with_multiple_devices = True  # fewer remaining batches than processes

    def __init__(self, items: Dataset, lengths: np.ndarray, run: Any, batch_size: int, workers: int,
                 restart: bool = False) -> None:  # fmt: skip
        super().__init__()
        self.items, self.lengths, self.run = items, lengths, run
        self.batch_size, self.workers, self.restart = batch_size, workers, restart
        self.batches: list[np.ndarray] = []
        self.skipped = 0
        #: Set by the engine where the workers score their batches themselves (a CPU): ``score(batch)``.
        self.score: Callable[[Any], Any] | None = None

    def setup(self, stage: str | None = None) -> None:
        trainer = self.trainer
        done = self.run.prepare(trainer.strategy, trainer.global_rank, self.restart)
        self.skipped = int(done.sum())
        todo = [b for b in plan_batches(self.lengths, self.batch_size) if not done[b].all()]
        self.batches = todo[trainer.global_rank :: trainer.world_size]

    def predict_dataloader(self) -> DataLoader:
        pin = self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(Batches(self.items, self.batches, self.score), batch_size=None, num_workers=self.workers,
                          pin_memory=pin)  # fmt: skip
