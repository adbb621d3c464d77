"""Pieces every task shares: optimisers and schedules, distributed evaluation sampling."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import Dataset


def eval_sampler(trainer: L.Trainer | None, dataset: Dataset) -> UnrepeatedDistributedSampler | None:
    """Under several processes, give each rank a disjoint share of ``dataset`` with no padding.

    Lightning's default DistributedSampler pads the last batch with repeated samples, which would count
    some test samples twice; this sampler visits each exactly once over all ranks.
    """
    if trainer is None or trainer.world_size <= 1:
        return None
    return UnrepeatedDistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank,
                                        shuffle=False)


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
