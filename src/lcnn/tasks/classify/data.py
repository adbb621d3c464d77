"""The image classification DataModule: train / validation / test loaders over :mod:`lcnn.data.images`."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from lcnn.data.images import ImageDataset, ImageSplits, download_images, load_images
from lcnn.data.samplers import eval_sampler
from lcnn.tasks.common import check_loader_settings


class ImageDataModule(L.LightningDataModule):
    """Train / validation / test loaders of an image dataset (``digits``, ``mnist``, ``cifar10``, ``folder:PATH``).

    A fixed ``val_fraction`` of the training images (the article's ``validation_split=0.2``) is held out for
    validation and early stopping: the same images for every seed. Downloads happen in ``prepare_data``,
    reading in ``setup``; ``classes`` and ``input_shape`` are known once set up.
    """

    def __init__(
        self,
        data: str = "digits",
        data_dir: str | None = None,
        batch_size: int = 256,
        val_fraction: float = 0.2,
        num_workers: int = 0,
        image_size: int | None = None,
    ) -> None:
        super().__init__()
        check_loader_settings(batch_size, val_fraction)
        self.save_hyperparameters()
        self.splits: ImageSplits | None = None
        self.generator = torch.Generator().manual_seed(torch.initial_seed())  # the shuffles: saved for resume

    def prepare_data(self) -> None:
        download_images(self.hparams.data, self.hparams.data_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        hp = self.hparams
        self.splits = load_images(hp.data, hp.data_dir, hp.image_size)
        train = ImageDataset(self.splits.train_images, self.splits.train_labels)
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
        n_val = int(round(len(train) * hp.val_fraction))
        self.train_set, self.val_set = Subset(train, order[n_val:]), Subset(train, order[:n_val])
        self.test_set = ImageDataset(self.splits.test_images, self.splits.test_labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.splits.input_shape

    @property
    def classes(self) -> list[str]:
        return self.splits.classes

    @property
    def num_classes(self) -> int:
        return len(self.splits.classes)

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        # Training: this module's generator, workers started anew each epoch (seeded from it), so that an
        # exact resume replays them. Evaluation: a generator of its own, so that it draws nothing elsewhere.
        workers = self.hparams.num_workers
        sampler = None if shuffle else eval_sampler(self.trainer, dataset)
        return DataLoader(dataset, batch_size=self.hparams.batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=workers, persistent_workers=workers > 0 and not shuffle,
                          generator=self.generator if shuffle else torch.Generator())  # fmt: skip

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
