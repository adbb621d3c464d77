"""The face LightningModule: identity classification with a LightCNN model, the embedding for verification.

Validation (our choice): each epoch logs ``val_loss`` (the training loss, margin included; it picks the best
checkpoint), ``val_acc`` (identity accuracy) and ``val_eer`` over all pairs of held-out images; the EER
threshold of the cosine similarity is stored in the checkpoint (buffer ``threshold``) and is what
``lcnn verify`` uses unless given one. It comes from people seen in training, so it is a starting point:
``lcnn evaluate`` on pairs of unseen people reports the threshold that fits them.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from lcnn.data.augment import BatchAugment
from lcnn.data.faces import CROP, RESIZE, FaceTransform
from lcnn.errors import UserError
from lcnn.layers import mfm_init
from lcnn.losses import MARGIN_DEFAULTS, MarginSoftmax
from lcnn.metrics import pairwise_eer
from lcnn.models import create_model, model_info
from lcnn.tasks.common import gather_by_index, make_optimizer

LOSSES = ("softmax", *MARGIN_DEFAULTS)


class FaceModule(L.LightningModule):
    """Identity classification of ``(N, C, 128, 128)`` faces in [0, 1] with a LightCNN model.

    ``loss``: ``softmax`` (the model's own classifier ``fc2``, after its dropout) or ``amsoftmax`` /
    ``arcface`` (a :class:`lcnn.losses.MarginSoftmax` head on the 256-d embedding, no dropout).
    ``forward``: logits ``(N, num_classes)``; ``embed``: ``(N, 256)``. The buffer ``threshold`` holds the
    cosine-similarity threshold found on the validation pairs (NaN until validated).
    """

    def __init__(
        self,
        model: str = "lightcnn9",
        num_classes: int = 2,
        classes: list[str] | None = None,
        loss: str = "softmax",
        margin: float | None = None,
        scale: float | None = None,
        dropout: float | None = None,
        lr: float = 0.01,
        optimizer: str = "sgd",
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        schedule: str = "none",
        lr_multipliers: bool = True,
        image_size: int = RESIZE,
        augment: dict[str, Any] | None = None,
        init: str | None = None,
        weight_init: str = "default",
        align: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        model_info(model, task="face")
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        kw = {} if dropout is None else {"dropout": dropout}
        self.model = create_model(model, num_classes=num_classes if loss == "softmax" else 0, **kw)
        if weight_init == "mfm":
            mfm_init(self.model)
        elif weight_init != "default":
            raise UserError(f"unknown weight_init {weight_init!r}; expected default or mfm")
        self.head = None if loss == "softmax" else MarginSoftmax(self.model.embedding_dim, num_classes, loss,
                                                                 margin, scale)  # fmt: skip
        self.augment = BatchAugment(**augment) if augment else None
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self._val_features: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []
        self._test: dict[int, list[tuple[torch.Tensor, ...]]] = {}
        self.test_embeddings: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def channels(self) -> int:
        """Input channels: 1 (grey) or 3 (BGR, LightCNN-V4)."""
        return self.model.in_chans

    def transform(self, train: bool = False) -> FaceTransform:
        """The preprocessing this model was trained with (``align``: on photos, detected and aligned first)."""
        return FaceTransform(CROP, self.hparams.image_size, self.channels, train=train,
                             align=bool(self.hparams.get("align", False)))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> ``(N, 256)`` embeddings."""
        return self.model.embed(x)

    def logits(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``(N, 256)`` -> logits; with labels, the margin losses add their margin."""
        if self.head is None:
            return self.model.classify(features)
        return self.head(features, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, 128, 128)`` -> logits ``(N, num_classes)``."""
        return self.logits(self.embed(x))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y, _ = batch
        if self.augment is not None:
            x = self.augment(x)
        features = self.embed(x)
        logits = self.logits(features, y)
        loss = F.cross_entropy(logits, y)
        plain = logits if self.head is None else self.logits(features.detach())  # identity accuracy: no margin
        acc = (plain.argmax(1) == y).float().mean()
        self.log_dict({"train_loss": loss, "train_acc": acc}, on_step=False, on_epoch=True, prog_bar=True,
                      batch_size=len(y))  # fmt: skip
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_features, self._val_labels = [], []

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y, _ = batch
        features = self.embed(x)
        loss = F.cross_entropy(self.logits(features, y), y)
        acc = (self.logits(features).argmax(1) == y).float().mean()
        self.log_dict({"val_loss": loss, "val_acc": acc}, on_epoch=True, prog_bar=True, batch_size=len(y),
                      sync_dist=True)  # fmt: skip
        self._val_features.append(features.detach().float().cpu())
        self._val_labels.append(y.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_features:
            return
        features, labels = torch.cat(self._val_features), torch.cat(self._val_labels)
        if self.trainer is not None and self.trainer.world_size > 1:
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, (features, labels))
            features, labels = torch.cat([f for f, _ in gathered]), torch.cat([y for _, y in gathered])
        result = pairwise_eer(features.numpy(), labels.numpy())
        if result is not None:
            eer, threshold = result
            self.threshold.fill_(threshold)
            self.log("val_eer", eer, prog_bar=True, sync_dist=False, rank_zero_only=True)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        x, y, index = batch
        self._test.setdefault(dataloader_idx, []).append((self.embed(x).float(), y, index))

    def on_test_epoch_end(self) -> None:
        """Embeddings and labels of each test loader, in dataset order, on every rank:
        ``test_embeddings[loader index] = (features (N, 256), labels (N,))``."""
        for idx, batches in sorted(self._test.items()):
            features, labels, _ = gather_by_index(self, [torch.cat(p).cpu() for p in zip(*batches)])
            self.test_embeddings[idx] = (features, labels)
        self._test.clear()

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        return self.embed(x).float()

    def configure_optimizers(self):
        hp = self.hparams
        if not hp.get("lr_multipliers", False):
            return make_optimizer(self, hp)
        # Official LightCNN: the classifier learns 10x faster, biases 2x (the classifier's 20x) without decay.
        groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            classifier = name.startswith(("model.fc2.", "head."))
            bias = name.endswith(".bias")
            factor = (20.0 if classifier else 2.0) if bias else (10.0 if classifier else 1.0)
            groups.setdefault((factor, bias), []).append(param)
        params = [{"params": ps, "lr": hp["lr"] * factor, **({"weight_decay": 0.0} if bias else {})}
                  for (factor, bias), ps in groups.items()]  # fmt: skip
        return make_optimizer(self, hp, params)
