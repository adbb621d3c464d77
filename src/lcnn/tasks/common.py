"""Pieces every task shares: optimisers and schedules, and the quiet Trainer that evaluation and prediction
run through."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import lightning as L
import numpy as np
import torch

# Two messages every Trainer prints that users can do nothing about: Lightning's batch-size inference uses a
# torch.utils._pytree API that torch 2.13 deprecates, and Lightning advertises its cloud logger.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(lambda rec: "litlogger" not in rec.getMessage())


def inference_trainer(accelerator: str = "auto", devices: int | str = 1, progress: bool = False) -> L.Trainer:
    """A Trainer for ``trainer.test`` / ``trainer.predict`` of a trained module: no logger, no checkpoints,
    no model summary, no progress bar unless asked for, and not the device report of every new Trainer."""
    report = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = report.level
    report.setLevel(logging.WARNING)
    try:
        return L.Trainer(accelerator=accelerator, devices=devices, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, enable_progress_bar=progress)  # fmt: skip
    finally:
        report.setLevel(level)


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
