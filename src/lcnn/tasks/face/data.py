"""The face DataModule: the training people's images (a held-out share for validation) and verification pairs
of the identity folder's other people."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lcnn.data.faces import (
    CROP,
    RESIZE,
    FaceDataset,
    FaceTransform,
    list_faces,
    list_identities,
    locate_subjects,
    select_people,
    split_per_identity,
)
from lcnn.data.pairs import Pair, try_build_pairs
from lcnn.data.samplers import eval_sampler
from lcnn.errors import DataError
from lcnn.tasks.common import check_loader_settings

log = logging.getLogger(__name__)


def data_root(data: str, data_dir: str | Path | None) -> Path:
    """The identity folder of a data name: ``orl`` (``data_dir``), ``folder:PATH`` or ``folder`` (``data_dir``)."""
    if data.startswith("folder:"):
        return Path(data.removeprefix("folder:"))
    if data in ("orl", "folder"):
        if not data_dir:
            raise DataError(f"--data {data} needs --data-dir (the identity folder{', s1 .. s40' * (data == 'orl')})")
        return Path(data_dir)
    raise DataError(f"unknown face data {data!r}; expected orl (with --data-dir) or folder:PATH (an identity folder)")


class FaceDataModule(L.LightningDataModule):
    """Training people's images (minus the held-out share for validation), and pairs of the other people.

    Args:
        data, data_dir: ``orl`` or ``folder`` with ``data_dir``, or ``folder:PATH``: an identity folder.
        people: the people to train on (``s1-s30``, ``alice,bob`` or a file of names); the others are tested.
        val_fraction: share of each person's images held out for validation.
        batch_size, num_workers: of the loaders.
        image_size: side the faces are resized to before the 128x128 crop.
        channels: 1 (grey) or 3 (BGR, LightCNN-V4): the model's input channels.
        align: the images are photos: detect and align each face first (:mod:`lcnn.faces`).

    Once set up: ``classes`` are the training people in natural order; ``no_face`` the photos left out because
    ``align`` found no face in them; ``test_pairs`` are all genuine and as many impostor pairs among the identity
    folder's other people (empty when fewer than two are left), and ``test_images`` the images they use, each once.
    """

    def __init__(
        self,
        data: str = "orl",
        data_dir: str | None = None,
        people: str | None = None,
        val_fraction: float = 0.2,
        batch_size: int = 128,
        num_workers: int = 0,
        image_size: int = RESIZE,
        channels: int = 1,
        align: bool = False,
    ) -> None:
        super().__init__()
        check_loader_settings(batch_size, val_fraction)
        self.save_hyperparameters()
        self.classes: list[str] = []
        self.generator = torch.Generator().manual_seed(torch.initial_seed())  # the shuffles: saved for resume

    def setup(self, stage: str | None = None) -> None:
        if self.classes:
            return
        hp = self.hparams
        root = data_root(hp.data, hp.data_dir)
        available = list_identities(root)
        classes = select_people(hp.people, available)
        if len(classes) < 2:
            raise DataError(f"{root}: need at least two people to train on, got {classes}")
        items = list_faces(root, classes)
        others = [p for p in available if p not in set(classes)]
        test_items = list_faces(root, others) if len(others) >= 2 else []
        self.landmarks, self.no_face = None, []
        if hp.align:  # detected once here, not in every epoch's reads
            self.landmarks, missing = locate_subjects([p for p, _ in items + test_items])
            self.no_face = missing
            if missing:
                shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                log.warning("lcnn: warning: no face found in %d of %d photos, left out of training and testing: %s",
                            len(missing), len(items) + len(test_items), shown)  # fmt: skip
                items = [item for item in items if str(item[0]) in self.landmarks]
                test_items = [item for item in test_items if str(item[0]) in self.landmarks]
        self.train_items, self.val_items = split_per_identity(items, hp.val_fraction)
        if not self.val_items:
            raise DataError(f"{root}: no images held out for validation (needs people with two or more images, "
                            f"got val_fraction {hp.val_fraction})")  # fmt: skip
        self.test_items = test_items
        self.test_pairs: list[Pair] = try_build_pairs(self.test_items)
        self.test_images = list(dict.fromkeys(p for pair in self.test_pairs for p in (pair.path1, pair.path2)))
        self.root, self.classes = root, classes
        self.train_set = self._dataset(self.train_items, train=True)
        self.val_set = self._dataset(self.val_items, train=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    @property
    def align(self) -> bool:
        return self.hparams.align

    def _dataset(self, items: list[tuple[Path, str]], train: bool) -> FaceDataset:
        index = {name: i for i, name in enumerate(self.classes)}
        transform = FaceTransform(CROP, self.hparams.image_size, self.hparams.channels, train=train,
                                  align=self.hparams.align, landmarks=self.landmarks)
        return FaceDataset([p for p, _ in items], [index[name] for _, name in items], transform)

    def _eval_loader(self, dataset: FaceDataset) -> DataLoader:
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=eval_sampler(self.trainer, dataset),
                          num_workers=self.hparams.num_workers, generator=torch.Generator())  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        # This module's generator, workers started anew each epoch (seeded from it): an exact resume replays them.
        return DataLoader(self.train_set, batch_size=self.hparams.batch_size, shuffle=True,
                          num_workers=self.hparams.num_workers, generator=self.generator)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        """The held-out images of the training people, then (where there are pairs) the test people's images."""
        transform = FaceTransform(CROP, self.hparams.image_size, self.hparams.channels, train=False,
                                  align=self.hparams.align, landmarks=self.landmarks)
        loaders = [self._eval_loader(self.val_set)]
        if self.test_images:
            loaders.append(self._eval_loader(FaceDataset(self.test_images, [0] * len(self.test_images), transform)))
        return loaders
