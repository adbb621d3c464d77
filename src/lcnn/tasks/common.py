"""Pieces every task shares: optimisers and schedules, and the quiet Trainer that evaluation and prediction
run through."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import lightning as L
import numpy as np
import torch

from lcnn.inference import quantize_int8
from lcnn.precision import LIGHTNING, check_int8, evaluate_precision, infer_precision
from lcnn.score.engine import ExactFP32

log = logging.getLogger(__name__)

# Two messages every Trainer prints that users can do nothing about: Lightning's batch-size inference uses a
# torch.utils._pytree API that torch 2.13 deprecates, and Lightning advertises its cloud logger.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda rec: "litlogger" not in rec.getMessage())


def check_loader_settings(batch_size: int, val_fraction: float) -> None:
    """A ValueError for a batch size under 1 or a validation fraction outside (0, 1): the DataModules' own
    check, for settings that come from a config file or the API rather than the command line."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def inference_trainer(accelerator: str = "auto", devices: int | str = 1, progress: bool = False,
                      precision: str | None = None) -> L.Trainer:  # fmt: skip
    """A Trainer for ``trainer.test`` / ``trainer.predict`` of a trained module: no logger, no checkpoints,
    no model summary, no progress bar unless asked for, and not the device report of every new Trainer.
    ``precision``: ``fp32`` (TF32 off on CUDA), ``bf16`` (autocast) or ``int8`` (a model quantized already:
    on the CPU); default evaluate's (:func:`lcnn.precision.evaluate_precision`)."""
    precision = precision or evaluate_precision()
    report = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = report.level
    report.setLevel(logging.WARNING)
    try:
        return L.Trainer(accelerator="cpu" if precision == "int8" else accelerator, devices=devices, logger=False,
                         enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
                         precision=LIGHTNING[precision],
                         callbacks=[ExactFP32()] if precision == "fp32" else [])  # fmt: skip
    finally:
        report.setLevel(level)


def predict_precision(task: str, module: L.LightningModule, int8: bool | None, calibration: Callable[[], torch.Tensor],
                      first: Callable[[], torch.Tensor], agreement: Callable[[torch.Tensor, torch.Tensor], float],
                      run: Callable[[Any, torch.Tensor], torch.Tensor] | None = None) -> str:  # fmt: skip
    """The path ``predict`` runs the module in (``fp32``, ``bf16`` or ``int8``), its model made int8 for int8.

    ``int8=True``: int8, calibrated on ``calibration()`` (``run(model, x)`` the computation to calibrate);
    ``False``: fp32; ``None``: :func:`lcnn.precision.infer_precision`, where a chosen int8 must also agree
    with fp32 on ``first()``, the first batch (:func:`lcnn.precision.check_int8`), else it is fp32."""
    shape = getattr(module.model, "input_shape", None)
    precision = {True: "int8", False: "fp32"}.get(int8) or infer_precision(task, module.hparams.model, shape)
    if precision != "int8":
        return precision
    if int8:
        module.model = quantize_int8(module.model, calibration(), run)
        return precision
    module.model, precision, note = check_int8(module.model, calibration(), first(), agreement, run)
    if precision != "int8":
        log.warning("lcnn: warning: %s; running fp32", note)
    return precision


def gather_by_index(module: L.LightningModule, parts: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[values, ..., index, ...]`` (``index`` third: each item's dataset index) of this rank -> those of all
    ranks, each item once (distributed samplers may repeat some), in dataset order."""
    if module.trainer is not None and module.trainer.world_size > 1:
        gathered: list[Any] = [None] * module.trainer.world_size
        torch.distributed.all_gather_object(gathered, parts)
        parts = [torch.cat(p) for p in zip(*gathered)]
    _, first = np.unique(parts[2].numpy(), return_index=True)
    return [p[first] for p in parts]


def make_optimizer(module: L.LightningModule, hp: Any, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Adam, AdamW or SGD with an optional schedule, from a task's hyperparameters.

    ``schedule``: ``none``; ``onecycle`` (warm-up then cosine decay, stepped every batch);
    ``step:EPOCHS:GAMMA`` (multiply the learning rate by GAMMA every EPOCHS epochs).
    ``params``: parameter groups (dicts that may set their own ``lr`` and ``weight_decay``) in place of all
    trainable parameters of ``module``; schedules scale each group's own learning rate.
    """
    if params is None:
        params = [p for p in module.parameters() if p.requires_grad]
    wd = hp.get("weight_decay", 0.0)
    name = hp.get("optimizer", "adam")
    if name == "adam":
        optimizer = torch.optim.Adam(params, lr=hp["lr"], weight_decay=wd)
    elif name == "adamw":
        optimizer = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=wd)
    elif name == "sgd":
        optimizer = torch.optim.SGD(params, lr=hp["lr"], momentum=hp.get("momentum", 0.9), weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {name!r}; expected adam, adamw or sgd")
    schedule = hp.get("schedule", "none")
    if schedule == "none":
        return {"optimizer": optimizer}
    if schedule == "onecycle":
        steps = module.trainer.estimated_stepping_batches
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                                        total_steps=int(steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
    if schedule.startswith("step:"):
        _, every, gamma = schedule.split(":")
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=int(every), gamma=float(gamma))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
    raise ValueError(f"unknown schedule {schedule!r}; expected none, onecycle or step:EPOCHS:GAMMA")
