"""The spoofing LightningModule: bona fide vs spoof on ``(N, 1, frames, features)`` front-end features.

Losses (``loss``):

- ``sigmoid`` (the ASVspoof 2021 baseline's): one logit, binary cross-entropy; score = the logit;
- ``softmax``: two logits (spoof, bona fide), cross-entropy; score = logit(bona fide) - logit(spoof);
- ``ocsoftmax``: the one-class softmax (:class:`lcnn.losses.OCSoftmax`) on a 256-d embedding; score = its cosine;
- ``amsoftmax``: AM-softmax on the cosines to two class vectors (:class:`lcnn.losses.CosineHead`, 64-d embedding);
  score = ``softmax(cosines)[bona fide]``, the cosines without scale or margin (NII's inference);
- ``p2sgrad``: P2SGrad, the squared error of the two cosines to the one-hot label; score = the bona fide cosine.

The angular heads and the back-ends' settings (``pooling``, ``hidden``, ``filterbank``) are those of NII's
comparative study of LCNN countermeasures (:mod:`lcnn.tasks.spoof.official`).

The decision threshold is the EER threshold on the dev set: the buffer ``threshold``, set after every
validation, so each checkpoint carries the threshold of its own epoch (the kept one: that of the best epoch).
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lcnn.audio.ssl import SSLFrontend
from lcnn.data.speech import MIN_FRAMES
from lcnn.errors import UserError
from lcnn.losses import CosineHead, OCSoftmax, am_softmax_loss, p2sgrad_loss
from lcnn.metrics import compute_eer
from lcnn.models import create_model, model_info
from lcnn.speed import prepare_input, prepare_model
from lcnn.tasks.common import gather_by_index, make_optimizer

LOSSES = ("sigmoid", "softmax", "ocsoftmax", "amsoftmax", "p2sgrad")
OC_DIM = 256  # embedding size for the one-class softmax
ANGLE_DIM = 64  # embedding size for AM-softmax and P2SGrad (NII's)


class SpoofModule(L.LightningModule):
    """Bona fide vs spoof on ``(N, 1, frames, n_features)`` features; ``score`` is higher for bona fide.

    Args:
        model: ``lcnn_lstm`` (any length) or ``lcnn`` (needs ``frames``): a model built for the spoof task.
        n_features: features per frame (from the front-end).
        frames: fixed number of frames for fixed-size models, ``None`` for variable-length ones.
        loss: ``sigmoid``, ``softmax``, ``ocsoftmax``, ``amsoftmax`` or ``p2sgrad`` (see the module docstring).
        dropout: ``None`` keeps the model's (0.7 for lcnn_lstm, 0.75 for lcnn).
        pooling, hidden, filterbank: the back-end's settings where it has them (``None``: its default):
            ``lcnn_lstm``'s pooling over time (``mean`` or ``sum``), ``lcnn_fixed``'s hidden layer (160, 512),
            a trainable filterbank of that many filters on a ``power`` front-end (NII's ``spec2``).
        window: ``lcnn_fixed``'s window in frames (``None``: the study's 750; training takes ``--frames``).
        embedding: the embedding size of an angular head (``None``: 256 for ocsoftmax, 64 for the others).
        margin, scale: AM-softmax's (training only; ``None``: 0.9 and 20).
        frontend: the front-end configuration, so that ``predict`` computes the same features.
        lr, optimizer, weight_decay, schedule: the optimisation (:func:`lcnn.tasks.common.make_optimizer`).
        channels_last: run the convolutions in channels-last memory (faster on CPUs, see :mod:`lcnn.speed`).
    """

    threshold: Tensor
    #: The :class:`lcnn.metrics.Calibration` of the scores to LLRs, stored in the checkpoint by ``lcnn calibrate``
    #: and set by :func:`lcnn.tasks.load_task`; ``None``: scores only.
    calibration: Any = None

    def __init__(
        self,
        model: str = "lcnn_lstm",
        n_features: int = 60,
        frames: int | None = None,
        loss: str = "sigmoid",
        dropout: float | None = None,
        frontend: dict[str, Any] | None = None,
        pooling: str | None = None,
        hidden: int | None = None,
        filterbank: int | None = None,
        window: int | None = None,
        embedding: int | None = None,
        margin: float | None = None,
        scale: float | None = None,
        lr: float = 3e-4,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        schedule: str = "step:10:0.5",
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")
        info = model_info(model, task="spoof")
        if not info.variable_length and not frames:
            raise UserError(f"model {model} takes a fixed number of frames: give --frames N")
        self.save_hyperparameters()
        self.variable_length = info.variable_length
        self.ssl = None
        if (frontend or {}).get("name") == "ssl":
            if not info.variable_length:
                raise UserError(f"an ssl: front-end feeds a back-end of any length (lcnn_lstm), not {model}")

            self.ssl = SSLFrontend(frontend["model"], frontend["finetune"], frontend["features"])
            n_features = frontend["features"]
        angular = embedding or (OC_DIM if loss == "ocsoftmax" else ANGLE_DIM)
        outputs = {"sigmoid": 1, "softmax": 2}.get(loss, angular)
        settings = {"dropout": dropout, "pooling": pooling, "hidden": hidden, "filterbank": filterbank,
                    "window": window}
        kw = {k: v for k, v in settings.items() if v is not None}
        try:
            self.model = create_model(model, num_classes=outputs, input_shape=(1, frames, n_features), **kw)
        except (ValueError, TypeError) as err:
            raise UserError(f"model {model}: {err}") from None
        prepare_model(self.model, channels_last)
        self.oc = OCSoftmax(angular) if loss == "ocsoftmax" else None
        self.head = CosineHead(angular, 2) if loss in ("amsoftmax", "p2sgrad") else None
        self.register_buffer("threshold", torch.tensor(float("nan")))
        self._val: list[tuple[Tensor, ...]] = []
        self._test: dict[int, list[tuple[Tensor, ...]]] = {}
        self.test_scores: dict[int, np.ndarray] = {}

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(N, 1, T, F)`` (+ ``lengths (N,)``) -> the model's output (logits, or the OC embedding). With an SSL
        front-end ``x`` is the waveform ``(N, 1, samples, 1)``, turned into its features here."""
        if self.ssl is not None:
            feats, lengths = self.ssl(x[:, 0, :, 0], lengths)
            x = F.pad(feats, (0, 0, 0, max(0, MIN_FRAMES - feats.shape[1]))).unsqueeze(1)  # a short utterance
        x = prepare_input(x, self.hparams.channels_last)
        return self.model(x, lengths) if self.variable_length else self.model(x)

    def score(self, output: Tensor) -> Tensor:
        """Model output -> ``(N,)`` scores, higher = more bona fide."""
        if self.oc is not None:
            return self.oc(output)
        if self.head is not None:
            cos = self.head(output)
            return torch.softmax(cos, dim=1)[:, 1] if self.hparams.loss == "amsoftmax" else cos[:, 1]
        if self.hparams.loss == "softmax":
            return output[:, 1] - output[:, 0]
        return output[:, 0]

    def loss(self, output: Tensor, labels: Tensor) -> Tensor:
        """Training loss for labels 1 = bona fide, 0 = spoof."""
        if self.oc is not None:
            return self.oc.loss(output, labels)
        if self.hparams.loss == "amsoftmax":
            margin, scale = self.hparams.margin, self.hparams.scale
            return am_softmax_loss(self.head(output), labels, 0.9 if margin is None else margin,
                                   20.0 if scale is None else scale)  # fmt: skip
        if self.hparams.loss == "p2sgrad":
            return p2sgrad_loss(self.head(output), labels)
        if self.hparams.loss == "softmax":
            return F.cross_entropy(output, labels)
        return F.binary_cross_entropy_with_logits(output[:, 0], labels.to(output.dtype))

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "set_epoch"):  # the augmentations' seeds follow it
            datamodule.set_epoch(self.current_epoch)

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, lengths, labels, _ = batch
        loss = self.loss(self(x, lengths), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, lengths, labels, index = batch
        output = self(x, lengths)
        losses = self.loss(output, labels).detach().expand(len(labels))
        self._val.append((self.score(output).detach().float(), labels, index, losses.float()))

    def on_validation_epoch_end(self) -> None:
        parts = [torch.cat(p).cpu() for p in zip(*self._val)] if self._val else [torch.empty(0)] * 4
        self._val.clear()
        scores, labels, _, losses = gather_by_index(self, parts)
        bona, spoof = scores[labels == 1].numpy(), scores[labels == 0].numpy()
        if len(bona) and len(spoof):
            eer, threshold = compute_eer(bona, spoof)
            self.threshold.fill_(threshold)
        else:  # the sanity check's few batches may hold one class only
            eer = 0.5
        self.log("val_eer", eer, prog_bar=True)
        self.log("val_loss", losses.mean().item() if len(losses) else math.nan)

    def test_step(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        scores, index = self.predict_step(batch, batch_idx)  # the scores of lcnn score, predict and serve
        self._test.setdefault(dataloader_idx, []).append((scores, batch[2], index))

    def on_test_epoch_end(self) -> None:
        """Scores of each test loader, in dataset order, on every rank: ``test_scores[loader index]``."""
        for idx, batches in sorted(self._test.items()):
            parts = [torch.cat(p).cpu() for p in zip(*batches)]
            self.test_scores[idx] = gather_by_index(self, parts)[0].double().numpy()
        self._test.clear()

    def predict_step(self, batch, batch_idx: int) -> tuple[Tensor, Tensor]:
        """``(scores (B,), dataset index (B,))`` of a batch ``(x, lengths, labels, index, ...)`` (the scoring
        engine's batches carry their unreadable items last); an empty batch gives no scores."""
        x, lengths, _, index = batch[:4]
        if not len(index):
            return torch.empty(0), index
        return self.score(self(x, lengths)).float(), index

    def configure_optimizers(self):
        return make_optimizer(self, self.hparams)
