"""The image classification LightningModule: softmax over any registered model, optional batch augmentation
and a mirrored test view."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from lcnn.data.augment import BatchAugment
from lcnn.models import create_model
from lcnn.speed import prepare_input, prepare_model
from lcnn.tasks.common import make_optimizer


class ClassificationModule(L.LightningModule):
    """Softmax classification of ``(N, C, H, W)`` images in [0, 1] with any registered model.

    With ``test_time_flip`` the test metrics and predictions average the probabilities of each image and
    its mirror image; validation (which picks the kept checkpoint) and exports use the single view.
    """

    def __init__(
        self,
        model: str = "lcnn",
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        dropout: float = 0.75,
        classes: list[str] | None = None,
        lr: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        schedule: str = "none",
        label_smoothing: float = 0.0,
        augment: dict[str, Any] | None = None,
        channels_last: bool = True,
        bn_momentum: float | None = None,
        test_time_flip: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model(model, num_classes=num_classes, input_shape=tuple(input_shape), dropout=dropout)
        if bn_momentum is not None:  # PyTorch's convention: the weight of the new batch (Keras's 0.99 is 0.01)
            for layer in self.model.modules():
                if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                    layer.momentum = bn_momentum
        self.augment = BatchAugment(**augment) if augment else None
        prepare_model(self.model, channels_last)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_count = SumMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> logits ``(N, num_classes)``."""
        return self.model(prepare_input(x, self.hparams.channels_last))

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> log-probabilities ``(N, num_classes)``, of the mean over the image and its
        mirror image when ``test_time_flip`` is set."""
        log_probs = self(x).float().log_softmax(1)
        if self.hparams.test_time_flip:
            mirrored = self(x.flip(-1)).float().log_softmax(1)
            log_probs = torch.logaddexp(log_probs, mirrored) - math.log(2)
        return log_probs

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.augment is not None:
            x = self.augment(x)
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        acc = (logits.argmax(1) == y).float().mean()
        self.log_dict({"train_loss": loss, "train_acc": acc}, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_loss.update(F.cross_entropy(logits, y), weight=len(y))
        self.val_acc.update(logits, y)
        self.log_dict({"val_loss": self.val_loss, "val_acc": self.val_acc}, prog_bar=True)

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        log_probs = self.log_probs(x)
        self.test_loss.update(F.nll_loss(log_probs, y), weight=len(y))
        self.test_acc.update(log_probs, y)
        self.test_count.update(torch.tensor(float(len(y)), device=y.device))
        self.log_dict({"test_loss": self.test_loss, "test_acc": self.test_acc, "test_count": self.test_count})

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.log_probs(x).exp()

    def configure_optimizers(self):
        return make_optimizer(self, self.hparams)
