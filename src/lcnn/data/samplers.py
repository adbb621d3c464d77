"""Batch samplers: batches of similar length, and evaluation sampling that visits each item once under DDP."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import BatchSampler, Dataset, Sampler

__all__ = ["BucketBatchSampler", "eval_sampler", "length_order"]


class BucketBatchSampler(BatchSampler):
    """Batches of utterances of similar length, for variable-length models (less padding, faster).

    The indices of ``sampler`` (a RandomSampler when training) are cut into pools of ``pool`` batches; each
    pool is sorted by ``lengths`` and cut into batches; with ``shuffle`` the batches are then visited in
    random order, drawn from ``generator`` (torch's global one by default), else pool by pool. ``pool=0``
    sorts everything at once.

    A :class:`~torch.utils.data.BatchSampler` with its ``(sampler, batch_size, drop_last, ...)`` signature, so
    that Lightning, which records the arguments of batch samplers made in a ``*_dataloader`` hook, rebuilds it
    around a distributed sampler under several processes.
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool = False, lengths: Sequence[int] = (),
                 pool: int = 32, shuffle: bool = True, generator: torch.Generator | None = None) -> None:  # fmt: skip
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = list(lengths)
        self.pool = pool
        self.shuffle = shuffle
        self.generator = generator

    def _batches(self, indices: list[int]) -> list[list[int]]:
        chunk = self.batch_size * self.pool if self.pool else max(1, len(indices))
        batches = []
        for start in range(0, len(indices), chunk):
            part = sorted(indices[start : start + chunk], key=lambda i: self.lengths[i])
            batches += [part[k : k + self.batch_size] for k in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(list(self.sampler))
        order = range(len(batches))
        if self.shuffle:
            order = torch.randperm(len(batches), generator=self.generator).tolist()
        for i in order:
            yield batches[i]

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        chunk = self.batch_size * self.pool if self.pool else max(1, n)
        sizes = [min(chunk, n - s) for s in range(0, n, chunk)]
        per = (lambda m: m // self.batch_size) if self.drop_last else (lambda m: -(-m // self.batch_size))
        return sum(per(m) for m in sizes)


def eval_sampler(trainer: Any, dataset: Dataset) -> Sampler[int] | None:
    """Under several processes, give each rank a disjoint share of ``dataset`` with no padding (``None`` for
    one process, or no trainer).

    Lightning's default DistributedSampler pads the last batch with repeated samples, which would count
    some test samples twice; this sampler visits each exactly once over all ranks.
    """
    if trainer is None or trainer.world_size <= 1:
        return None

    return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                        shuffle=False)


def length_order(lengths: Sequence[int]) -> list[int]:
    """Indices sorted by ``lengths`` (stable): a dataset visited in this order gives batches of similar length
    with a plain DataLoader, which Lightning can shard and wrap as it likes (evaluation, prediction)."""
    return sorted(range(len(lengths)), key=lambda i: lengths[i])
